"""Causal language-model fine-tuning on a text corpus (domain adaptation), with perplexity before and after.

Documents are tokenized, joined with an end-of-text token and cut into blocks of --block-size tokens; the model
learns to predict each next token. Test perplexity (exp of the mean token loss) is measured before and after training.

Out of the box: the embedded SmolLM2-135M on the embedded Shakespeare plays.
  python recipes/causal_lm.py --epochs 3                        # the default corpus, three passes
  python recipes/causal_lm.py --train-file my_notes/            # a folder of .txt files (or one .txt)
  python recipes/causal_lm.py --model gpt2 --dataset wikitext --dataset-config wikitext-2-raw-v1

Supports: any causal-LM checkpoint; .txt files/folders, csv/json/jsonl/parquet (--text-column) or hub datasets;
a --prompt sample after training; docs/techniques.md's techniques: freezing, LoRA, layer-wise learning rates, ...
"""

from common.config import CausalLMOutput, CausalLMTraining, CorpusData, ModelConfig, answer_help
from common.tasks.causal_lm import CausalLMConfig

# What this recipe runs with no flags; every flag (see --help) changes one of these settings.
DEFAULTS = CausalLMConfig(
    model=ModelConfig(model="embedded:smollm2-135m"),
    data=CorpusData(
        dataset="embedded:shakespeare",
        block_size=256,
        max_train_samples=160,  # blocks per epoch: ~41k tokens, ~3 minutes an epoch on 2 CPU cores
        max_eval_samples=32,  # validation blocks after each epoch
        max_test_samples=64,  # test blocks for the before/after perplexity
    ),
    training=CausalLMTraining(epochs=1, lr=1e-4, batch_size=8),
    output=CausalLMOutput(output_dir="outputs/causal_lm", prompt="ROMEO:\n"),
)

if __name__ == "__main__":
    answer_help(DEFAULTS, __doc__)  # before the imports below: --help need not wait seconds for torch

from transformers import default_data_collator

from common.data import check_max_length, corpus_blocks, corpus_splits, lm_datasets
from common.evaluate import causal_lm_metrics, evaluate_causal_lm, evaluate_split, next_token_predictions
from common.model import adapt, generate, load_causal_lm, load_config, load_tokenizer, pad_with_end_of_text
from common.report import print_metrics
from common.run import command_line, save_run, start_run
from common.train import RecipeTrainer, technique_hooks, training_arguments

SHOWN = ["test_perplexity_before", "test_perplexity", "perplexity_reduction", "test_next_token_accuracy",
         "test_continuation_chrf", "train_runtime"]  # printed at the end; metrics.json has them all  # fmt: skip


def main(config: CausalLMConfig = DEFAULTS) -> dict:
    """One run: perplexity before, train, perplexity after, save. Returns the metrics (also in metrics.json)."""
    # 1. the run: output folder checked, random state seeded, the checkpoint to --resume from (or None)
    resume = start_run(config)

    # 2. data: the documents of each split (files, a hub dataset or the embedded corpus), cleaned
    documents = corpus_splits(config.data)

    # 3. tokens: documents -> token streams -> blocks (no held-out files: blocks split 80/10/10); --packing documents
    #    restarts positions at each document; a decoder has no pad token: it pads with end-of-text (for generation)
    data, seed = config.data, config.training.seed
    tokenizer = pad_with_end_of_text(load_tokenizer(config.model.model, config.model.trust_remote_code))
    check_max_length(data.block_size, load_config(config.model.model, config.model.trust_remote_code), "--block-size")
    blocks = corpus_blocks(documents, tokenizer, data.block_size, seed)
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_test_samples}
    datasets = lm_datasets(blocks, limits, seed, data.packing)

    # 4. model; then --freeze-*, --dropout, --lm-loss, --lora-r
    model = load_causal_lm(config.model, tokenizer, data.block_size)
    model = adapt(model, config.techniques, chunked_lm_loss=config.training.chunked_lm_loss)

    # 5. Trainer: keep only argmax ids at eval time, never the [blocks, tokens, vocabulary] logits
    trainer = RecipeTrainer(
        config=config,
        model=model,
        args=training_arguments(config, model=model),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=default_data_collator,
        compute_metrics=causal_lm_metrics,
        preprocess_logits_for_metrics=next_token_predictions,
        **technique_hooks(config.techniques, model),  # callbacks and learning-rate groups of the techniques
    )

    # 6. perplexity before, train, perplexity after, the hardest passages, BLEU/chrF of continuations
    before = evaluate_split(trainer, datasets["test"], "test")
    train_result = trainer.train(resume_from_checkpoint=resume)
    test = evaluate_causal_lm(trainer, tokenizer, datasets, before=before)
    reduction = 1 - test.metrics["test_perplexity"] / before["test_perplexity"]
    metrics = {**train_result.metrics, **test.metrics, "perplexity_reduction": reduction}
    metrics.update({f"{k}_before": before[k] for k in ("test_perplexity", "test_next_token_accuracy")})
    print_metrics("Held-out test", metrics, SHOWN)
    if config.output.prompt:
        sample = generate(model, tokenizer, config.output.prompt, config.output.max_new_tokens, seed)
        print(f"\nSample from {config.output.prompt!r}:\n{sample}")

    # 7. save model (or LoRA adapter), tokenizer, metrics, report.md, plots
    save_run(config, model, tokenizer, metrics, trainer.state.log_history, test)
    return metrics


if __name__ == "__main__":
    command_line(main, DEFAULTS)  # flags -> config; --search runs main() once per trial
