"""Text classification with a BERT-style encoder: single sentences or sentence pairs, any number of classes.

The encoder reads the whole text in both directions; `AutoModelForSequenceClassification` adds a linear
head on the [CLS] representation and the whole network is fine-tuned.

Out of the box: the embedded all-MiniLM-L6-v2 (BERT architecture) on the embedded Rotten Tomatoes snippets.
  python recipes/bert_classification.py                                         # the default run (make bert)
  python recipes/bert_classification.py --model bert-base-uncased --dataset imdb  # with the hub
  python recipes/bert_classification.py --train-file tickets.jsonl --text-column body --label-column team
  python recipes/bert_classification.py --train-file pairs.csv --text-column sentence1 sentence2

Supports: any encoder checkpoint; csv/json/jsonl/parquet files or hub datasets; string or integer labels;
sentence pairs (two --text-column names: paraphrase, entailment); the techniques of docs/techniques.md:
freezing, gradual unfreezing, layer-wise learning rates, LoRA, class weights, dropout/label smoothing,
early stopping, long texts (head+tail, sliding windows), augmentation.
"""

from common.config import (
    ClassificationData,
    ClassificationOutput,
    ModelConfig,
    TrainingConfig,
    answer_help,
)
from common.tasks.classification import ClassificationConfig

# What this recipe runs with no flags; every flag (see --help) changes one of these settings.
DEFAULTS = ClassificationConfig(
    model=ModelConfig(model="embedded:minilm-l6"),
    data=ClassificationData(
        dataset="embedded:rotten-tomatoes",
        max_eval_samples=1000,  # validation after each epoch; the test split is always used whole
    ),
    # small encoders like MiniLM want a higher rate than BERT-base's usual 2e-5
    training=TrainingConfig(epochs=2, lr=1e-4, batch_size=32),
    output=ClassificationOutput(output_dir="outputs/bert_classification"),
)

if __name__ == "__main__":
    answer_help(DEFAULTS, __doc__)  # before the imports below: --help need not wait seconds for torch

from common.data import classification_datasets, classification_splits, fit_max_length, padding_collator
from common.evaluate import classification_metrics, evaluate_classifier
from common.model import adapt, load_classifier, load_tokenizer, model_positions
from common.report import print_metrics
from common.run import command_line, save_run, start_run
from common.train import RecipeTrainer, technique_hooks, training_arguments


def main(config: ClassificationConfig = DEFAULTS) -> dict:
    """One run: train, evaluate on the test split, save. Returns the metrics (also in OUTPUT_DIR/metrics.json)."""
    # 1. the run: output folder checked, random state seeded, the checkpoint to --resume from (or None)
    resume = start_run(config)

    # 2. data: load, clean (strip, drop empty/duplicate), split 80/10/10 if needed, label names -> ids
    splits, label_names = classification_splits(config.data, config.training.seed)

    # 3. model: the encoder with a new classification head sized to the labels; then --freeze-*, --dropout, --lora-r
    tokenizer = load_tokenizer(config.model.model, config.model.trust_remote_code)
    # --max-length auto (the default): long enough for 199 in 200 training texts, at most what the model reads
    max_length = fit_max_length(config.data, splits["train"], tokenizer, model_positions(config.model))
    config = config.derive(max_length=max_length)  # run_config.json records the length used
    model = load_classifier(config.model, label_names, tokenizer, config.data.max_length)
    model = adapt(model, config.techniques)
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
