"""Text classification with a BERT-style encoder: single sentences or sentence pairs, any number of classes.

The encoder reads the whole text in both directions; `AutoModelForSequenceClassification` adds a linear
head on the [CLS] representation and the whole network is fine-tuned.

Out of the box: the embedded all-MiniLM-L6-v2 (BERT architecture) on the embedded Rotten Tomatoes snippets.
  python recipes/bert_classification.py                                         # the default run (make bert)
  python recipes/bert_classification.py --model bert-base-uncased --dataset imdb  # with the hub
  python recipes/bert_classification.py --train-file tickets.jsonl --text-column body --label-column team
  python recipes/bert_classification.py --train-file pairs.csv --text-column sentence1 sentence2

Supports: any encoder checkpoint; csv/json/jsonl/parquet files or hub datasets; string or integer labels;
sentence pairs (two --text-column names: paraphrase, entailment); the techniques of the README:
freezing, gradual unfreezing, layer-wise learning rates, LoRA, class weights, dropout/label smoothing,
early stopping, long texts (head+tail, sliding windows), augmentation.
"""

from transformers import set_seed

from common import cli, crossval, data, evaluation, lora, modeling, outputs, reporting, search, tokenization, training
from common.metrics import classification_metrics

DEFAULTS = dict(
    model="embedded:minilm-l6",
    dataset="embedded:rotten-tomatoes",
    epochs=2,
    lr=1e-4,  # small encoders like MiniLM want a higher rate than BERT-base's usual 2e-5
    batch_size=32,
    max_length=64,  # snippets are short (median ~25 tokens); longer ones are truncated
    max_eval_samples=1000,  # validation after each epoch; the test split is always used whole
    output_dir="outputs/bert_classification",
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

    # 3. model: tokenizer, encoder with a new classification head sized to the labels
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
