"""Sentiment classification with a decoder language model (GPT-2 family, SmolLM2, Llama, ...).

A decoder LM reads the text left to right, so only its last token has seen the whole text:
`AutoModelForSequenceClassification` puts a small linear head on the hidden state of the last real (non-pad)
token. Decoder LMs such as GPT-2 have no pad token, so the end-of-text token pads batches, and its id is stored
in the model config so pooling skips the padding. Step 3 below is where this recipe differs from the BERT one.

Out of the box: the embedded SmolLM2-135M on the embedded Rotten Tomatoes snippets (fresh vs rotten),
bottom layers frozen, bf16 autocast where it is native and pays (--precision auto).
  python recipes/gpt2_sentiment.py                              # the default run (make sentiment)
  python recipes/gpt2_sentiment.py --model gpt2 --dataset imdb  # with the hub
  python recipes/gpt2_sentiment.py --train-file reviews.csv --text-column review --label-column stars

Supports: any causal-LM checkpoint; csv/json/jsonl/parquet files or hub datasets; string or integer labels,
any number of classes; sentence pairs (two --text-column names); the techniques of docs/techniques.md: freezing, gradual
unfreezing, layer-wise learning rates, LoRA, class weights, dropout/label smoothing, early stopping, long texts.
"""

from common.config import (
    ClassificationData,
    ClassificationOutput,
    ClassificationTechniques,
    ModelConfig,
    TrainingConfig,
    answer_help,
)
from common.tasks.classification import ClassificationConfig

# What this recipe runs with no flags; every flag (see --help) changes one of these settings.
DEFAULTS = ClassificationConfig(
    model=ModelConfig(model="embedded:smollm2-135m"),
    data=ClassificationData(
        dataset="embedded:rotten-tomatoes",
        max_train_samples=6000,
        max_eval_samples=400,  # validation during training; the test split is always used whole
    ),
    training=TrainingConfig(epochs=1, lr=1e-4, batch_size=16),
    # freeze 20 of the 30 blocks: training the top third is the fastest way past 81% on 2 CPU cores
    techniques=ClassificationTechniques(freeze_layers=20),
    output=ClassificationOutput(output_dir="outputs/gpt2_sentiment"),
)

if __name__ == "__main__":
    answer_help(DEFAULTS, __doc__)  # before the imports below: --help need not wait seconds for torch

from common.data import classification_datasets, classification_splits, fit_max_length, padding_collator
from common.evaluate import classification_metrics, evaluate_classifier
from common.model import adapt, load_classifier, load_tokenizer, model_positions, pad_with_end_of_text
from common.report import print_metrics
from common.run import command_line, save_run, start_run
from common.train import RecipeTrainer, technique_hooks, training_arguments


def main(config: ClassificationConfig = DEFAULTS) -> dict:
    """One run: train, evaluate on the test split, save. Returns the metrics (also in OUTPUT_DIR/metrics.json)."""
    # 1. the run: output folder checked, random state seeded, the checkpoint to --resume from (or None)
    resume = start_run(config)

    # 2. data: load, clean (strip, drop empty/duplicate), split 80/10/10 if needed, label names -> ids
    splits, label_names = classification_splits(config.data, config.training.seed)

    # 3. model, the decoder way: the tokenizer has no pad token, so batches are padded with end-of-text; the head
    #    reads the last token that is not padding, so load_classifier stores that pad id in the model's config
    tokenizer = pad_with_end_of_text(load_tokenizer(config.model.model, config.model.trust_remote_code))
    # --max-length auto (the default): long enough for 199 in 200 training texts, at most what the model reads
    max_length = fit_max_length(config.data, splits["train"], tokenizer, model_positions(config.model))
    config = config.derive(max_length=max_length)  # run_config.json records the length used
    model = load_classifier(config.model, label_names, tokenizer, config.data.max_length)
    model = adapt(model, config.techniques)  # --freeze-*, --dropout, --lora-r
    datasets = classification_datasets(
        splits, tokenizer, config.data.text_column, config.data.max_length, config.data.long_text, config.data.stride
    )

    # 4. Trainer for this run; the techniques' loss (--loss, --class-weights), callbacks and learning-rate groups
    trainer = RecipeTrainer(
        config=config,
        model=model,
        args=training_arguments(config, model=model),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=padding_collator(tokenizer),
        compute_metrics=classification_metrics,
        **technique_hooks(config.techniques, model, splits["train"]["labels"], label_names),
    )

    # 5. train, 6. evaluate on the held-out test split: every metric, errors, per class, baselines, --explain
    train_result = trainer.train(resume_from_checkpoint=resume)
    test = evaluate_classifier(
        trainer, datasets["test"], splits, label_names, config.data.text_column, config.output, tokenizer
    )
    metrics = {**train_result.metrics, **test.metrics}
    print_metrics("Test results", metrics, [*test.shown, "train_runtime"])

    # 7. save model (or LoRA adapter), tokenizer, metrics, report.md, plots
    save_run(config, model, tokenizer, metrics, trainer.state.log_history, test)
    return metrics


if __name__ == "__main__":
    command_line(main, DEFAULTS)  # flags -> config; --kfold / --search run main() once per fold / trial
