"""Causal language-model fine-tuning on a text corpus (domain adaptation), with perplexity before and after.

The corpus is tokenized, documents are joined with an end-of-text token, and the stream is cut into
blocks of --block-size tokens; the model learns to predict each next token. Held-out perplexity
(exp of the mean token loss) is measured on the test blocks before and after training.

Out of the box: the embedded SmolLM2-135M on the embedded Shakespeare plays.
  python recipes/causal_lm.py --epochs 3                        # the default corpus, three passes
  python recipes/causal_lm.py --train-file my_notes/            # a folder of .txt files (or one .txt)
  python recipes/causal_lm.py --model gpt2 --dataset wikitext --dataset-config wikitext-2-raw-v1

Supports: any causal-LM checkpoint; .txt files/folders, csv/json/jsonl/parquet (--text-column) or hub
datasets; a generated sample from --prompt after training; freezing, gradual unfreezing, layer-wise
learning rates, LoRA, dropout/label smoothing and early stopping (see the README's Techniques).
"""

from transformers import default_data_collator, set_seed

from common import cli, data, evaluation, lora, modeling, outputs, reporting, search, tokenization, training
from common.metrics import causal_lm_metrics, next_token_predictions

DEFAULTS = dict(
    model="embedded:smollm2-135m",
    dataset="embedded:shakespeare",
    epochs=1,
    lr=1e-4,
    batch_size=8,
    block_size=256,
    max_train_samples=160,  # blocks per epoch: ~41k tokens, ~3 minutes an epoch on 2 CPU cores
    max_eval_samples=32,  # validation blocks after each epoch
    max_test_samples=64,  # test blocks for the before/after perplexity
    prompt="ROMEO:\n",
    output_dir="outputs/causal_lm",
)


def main(argv=None):
    # 1. arguments
    args = cli.parse(cli.causal_lm_parser(__doc__, **DEFAULTS), argv)
    outputs.check_output_dir(args.output_dir, args.overwrite, args.resume)
    resume = outputs.resume_point(args)  # None, or the checkpoint --resume continues from
    if args.search:  # several runs of this same main(), one per trial of the hyperparameter search
        return search.run(main, args, argv)
    set_seed(args.seed)

    # 2. data: documents per split -> one token stream each -> blocks; no held-out files: split blocks 80/10/10;
    #    --packing documents restarts positions at each document so documents in a block cannot see each other
    documents = data.corpus_splits(args)
    tokenizer = modeling.load_tokenizer(args.model, args.trust_remote_code)
    tokenization.check_max_length(args.block_size, modeling.load_config(args.model, args.trust_remote_code), "--block-size")
    blocks = tokenization.corpus_blocks(documents, tokenizer, args.block_size, args.seed)
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_test_samples}
    datasets = tokenization.lm_datasets(blocks, limits, args.seed, args.packing, tokenizer.eos_token_id)

    # 3. model
    model = modeling.load_causal_lm(args.model, tokenizer, args.trust_remote_code, args.allow_pickle, args.block_size,
                                    args.attention)
    model = modeling.adapt(model, args, task="causal_lm")  # --dropout, --freeze-*, --lm-loss, --lora-r

    # 4. Trainer: keep only argmax ids at eval time, never the [blocks, tokens, vocabulary] logits
    trainer = training.RecipeTrainer(
        model=model,
        args=training.training_arguments(args, training.scratch_dir()),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=default_data_collator,
        compute_metrics=causal_lm_metrics,
        preprocess_logits_for_metrics=next_token_predictions,
        layer_lr_decay=args.layer_lr_decay,
        gradual_unfreeze=args.gradual_unfreeze,
        callbacks=training.callbacks(args),  # early stopping
    )

    # 5. perplexity before, train, 6. perplexity after, the hardest passages, BLEU/chrF of continuations
    before = training.evaluate(trainer, datasets["test"], "test")
    train_result = trainer.train(resume_from_checkpoint=resume)
    test = evaluation.causal_lm(trainer, tokenizer, datasets)
    reduction = 1 - test.metrics["test_perplexity"] / before["test_perplexity"]
    metrics = {**train_result.metrics, **test.metrics, "test_perplexity_before": before["test_perplexity"],
               "test_next_token_accuracy_before": before["test_next_token_accuracy"], "perplexity_reduction": reduction}
    reporting.print_metrics("Held-out test", metrics, ["test_perplexity_before", "test_perplexity", "perplexity_reduction",
                                                       "test_next_token_accuracy", "test_continuation_chrf", "train_runtime"])
    if args.prompt:
        print(f"\nSample from {args.prompt!r}:\n{modeling.generate(model, tokenizer, args.prompt, args.max_new_tokens, args.seed)}")

    # 7. save model (or LoRA adapter, or with --merge-lora the merged model), tokenizer, metrics, report.md, plots
    outputs.save_run(args.output_dir, lora.for_saving(model, args.merge_lora), tokenizer, metrics, vars(args),
                     trainer.state.log_history, test)


if __name__ == "__main__":
    cli.run(main)
