"""Sentiment classification with a decoder language model (GPT-2 family, SmolLM2, Llama, ...).

A decoder LM reads the text left to right; `AutoModelForSequenceClassification` puts a small linear head
on the hidden state of the last real (non-pad) token. Decoder LMs such as GPT-2 have no pad token, so the
end-of-text token pads batches, and its id is stored in the model config so pooling skips the padding.

Out of the box: the embedded SmolLM2-135M on the embedded Rotten Tomatoes snippets (fresh vs rotten),
bottom layers frozen, bf16 autocast where the CPU/GPU supports it.
  python recipes/gpt2_sentiment.py                              # the default run (make sentiment)
  python recipes/gpt2_sentiment.py --model gpt2 --dataset imdb  # with the hub
  python recipes/gpt2_sentiment.py --train-file reviews.csv --text-column review --label-column stars

Supports: any causal-LM checkpoint; csv/json/jsonl/parquet files or hub datasets; string or integer
labels, any number of classes; sentence pairs (two --text-column names); the techniques of the README:
freezing, gradual unfreezing, layer-wise learning rates, LoRA, class weights, dropout/label smoothing,
early stopping, long texts (head+tail, sliding windows), augmentation.
"""

from transformers import set_seed

from common import cli, crossval, data, evaluation, lora, modeling, outputs, reporting, search, tokenization, training
from common.metrics import classification_metrics

DEFAULTS = dict(
    model="embedded:smollm2-135m",
    dataset="embedded:rotten-tomatoes",
    freeze_layers=20,  # of 30 blocks: train the top third, the fastest way past 81% on 2 CPU cores
    epochs=1,
    lr=1e-4,
    batch_size=16,
    max_length=64,  # snippets are short (median ~25 tokens); longer ones are truncated
    max_train_samples=6000,
    max_eval_samples=400,  # validation during training; the test split is always used whole
    output_dir="outputs/gpt2_sentiment",
)


def main(argv=None):
    # 1. arguments
    args = cli.parse(cli.classification_parser(__doc__, **DEFAULTS), argv)
    outputs.check_output_dir(args.output_dir, args.overwrite, args.resume)
    resume = outputs.resume_point(args)  # None, or the checkpoint --resume continues from
    if args.kfold or args.search:  # several runs of this same main(): cross-validation folds or search trials
        return (crossval if args.kfold else search).run(main, args, argv)
    set_seed(args.seed)

    # 2. data: load, clean (strip, drop empty/duplicate), split 80/10/10 if needed, label names -> ids
    splits, label_names = data.classification_splits(args)

    # 3. model: tokenizer with a pad token, classifier head sized to the labels, then --freeze-*, --dropout, --lora-r
    tokenizer, model = modeling.classification_setup(args, label_names)
    datasets = tokenization.classification_datasets(splits, tokenizer, args.text_column, args.max_length,
                                                    args.long_text, args.stride)

    # 4. Trainer (a Trainer that also knows the technique flags; all None unless given)
    trainer = training.RecipeTrainer(
        model=model,
        args=training.training_arguments(args, training.scratch_dir()),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=tokenization.padding_collator(tokenizer),
        compute_metrics=classification_metrics,
        layer_lr_decay=args.layer_lr_decay,
        gradual_unfreeze=args.gradual_unfreeze,
        class_weights=training.class_weights(args.class_weights, splits["train"]["labels"], label_names),
        callbacks=training.callbacks(args),  # early stopping
    )

    # 5. train, 6. evaluate on the held-out test split: every metric, the errors ranked, per class, --explain
    train_result = trainer.train(resume_from_checkpoint=resume)
    test = evaluation.classification(trainer, datasets["test"], splits, label_names, args.text_column, args.explain, tokenizer)
    metrics = {**train_result.metrics, **test.metrics}
    reporting.print_metrics("Test results", metrics, ["test_accuracy", "test_macro_f1", "test_mcc", "test_loss", "train_runtime"])

    # 7. save model (or LoRA adapter, or with --merge-lora the merged model), tokenizer, metrics, report.md, plots
    outputs.save_run(args.output_dir, lora.for_saving(model, args.merge_lora), tokenizer, metrics, vars(args),
                     trainer.state.log_history, test)


if __name__ == "__main__":
    cli.run(main)
