"""One training-throughput measurement: a recipe's model and data, run one way (ours or a baseline), N steps.

Run in its own process by benchmarks/bench.py so that peak memory is per run:
  python -m benchmarks.throughput sentiment ours --steps 20

Ways of running (the baselines are faithful to how the tutorials and the standard examples do it):
  ours         bf16 autocast where native, each batch padded to its own longest example (to a multiple of 8
               on CUDA only), length-grouped batches, truncation at the recipe's --max-length, --attention auto
               (eager at these lengths on a CPU); causal LM: --packing documents, --lm-loss chunked; the
               recipe's --freeze-layers / --freeze-embeddings
  ours-fp32    the same without bf16; ours-compile: the same plus --compile
  hf-examples  fp32, every example padded to max_seq_length=128 (run_glue's default); for the causal LM,
               the same concatenate-and-chunk blocks in fp32; transformers' default attention (SDPA) and loss
  seeds        fp32, the whole set tokenized with padding=True: every example padded to the longest in the set

FLOPs are counted per *useful* (non-pad) token as matmul work: forward 2 x (all non-embedding weights, plus
the LM head for the causal LM), backward 4 x (the trainable ones). Attention-score FLOPs (small at these
lengths) and padding are not counted, so padding shows up as lost throughput, as it should.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainingArguments, default_data_collator, set_seed  # noqa: E402

from common import assets  # noqa: E402
from common.config import ModelConfig  # noqa: E402
from common.data import tables, tokens  # noqa: E402
from common.evaluate.metrics import classification_metrics  # noqa: E402
from common.model import adapt, load_causal_lm, load_classifier, load_tokenizer, pad_with_end_of_text  # noqa: E402
from common.runtime import precision_flags, scratch_dir  # noqa: E402
from recipes import bert_classification, causal_lm, gpt2_sentiment  # noqa: E402


def recipe_case(defaults, kind: str, max_length: int) -> dict:
    """The settings that shape a training step, read from a recipe's DEFAULTS so the bench follows the recipe."""
    return dict(
        model=defaults.model.model,
        techniques=defaults.techniques,
        batch_size=defaults.training.batch_size,
        max_length=max_length,
        kind=kind,
    )


CASES = {
    "sentiment": recipe_case(gpt2_sentiment.DEFAULTS, "classification", gpt2_sentiment.DEFAULTS.data.max_length),
    "bert": recipe_case(bert_classification.DEFAULTS, "classification", bert_classification.DEFAULTS.data.max_length),
    "causal_lm": recipe_case(causal_lm.DEFAULTS, "causal", causal_lm.DEFAULTS.data.block_size),
}
# ours-fp32: our data path without bf16; ours-compile: ours plus --compile (compile time excluded by the warmup)
WAYS = ("ours", "ours-fp32", "ours-compile", "hf-examples", "seeds")


class TimedTrainer(Trainer):
    """Trainer that records when each optimizer step starts and how many real and padded tokens it saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_log = []  # (start time, useful tokens, tokens including padding, examples)

    def training_step(self, model, inputs, num_items_in_batch=None):
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        useful = int(mask.sum()) if mask is not None else ids.numel()
        self.step_log.append((time.perf_counter(), useful, ids.numel(), ids.shape[0]))
        return super().training_step(model, inputs, num_items_in_batch)


def matmul_flops_per_token(model, causal: bool) -> float:
    embedding_ids = {id(p) for p in model.get_input_embeddings().parameters()}
    position = [m for n, m in model.named_modules() if n.endswith(("wpe", "position_embeddings"))]
    embedding_ids |= {id(p) for m in position for p in m.parameters()}
    dense = [p for p in model.parameters() if id(p) not in embedding_ids]
    forward = sum(p.numel() for p in dense)
    trainable = sum(p.numel() for p in dense if p.requires_grad)
    if causal:  # the tied LM head is a matmul with the embedding matrix: count it as dense work
        head = model.get_input_embeddings().weight
        forward += head.numel()
        trainable += head.numel() if head.requires_grad else 0
    return 2.0 * forward + 4.0 * trainable


def classification_data(case: dict, way: str, tokenizer, n_train: int, seed: int):
    """(train, test, collator), from the same cleaned, seeded 80/10/10 split as the recipes, padded `way`'s way."""
    import datasets

    splits = tables.clean({"train": assets.load_dataset_frame("embedded:rotten-tomatoes")}, ["text"], "label")
    splits = tables.split(splits, seed, stratify="label")
    splits = {"train": tables.subsample(splits["train"], n_train, seed), "test": splits["test"]}
    splits, _ = tables.encode_labels(splits, "label")

    def encode(frame):
        if way.startswith("ours"):  # ours, ours-fp32, ours-compile: the recipes' own data path
            return tokens.classification_dataset(frame, tokenizer, ["text"], case["max_length"])
        if way == "hf-examples":
            encoded = tokenizer(frame["text"].tolist(), padding="max_length", max_length=128, truncation=True)
        else:  # seeds: pad everything to the longest example in the whole set
            encoded = tokenizer(frame["text"].tolist(), padding=True, truncation=True)
        columns = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
        return datasets.Dataset.from_dict({**columns, "labels": frame["labels"].tolist()})

    collator = tokens.padding_collator(tokenizer) if way.startswith("ours") else default_data_collator
    return encode(splits["train"]), encode(splits["test"]), collator


PARITY_TEST_BLOCKS = 48


def plain_perplexity(model, blocks, batch_size: int = 8) -> float:
    """exp(mean next-token loss) over `blocks`, computed the same way for every way: fp32, plain positions,
    the model's own loss, so that only how the model was trained differs."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = torch.as_tensor(np.asarray(blocks[start : start + batch_size]), device=model.device)
            n = ids[:, 1:].numel()
            total += model(input_ids=ids, labels=ids).loss.item() * n
            count += n
    return math.exp(total / count)


def measure(
    case_name: str, way: str, steps: int, warmup: int, seed: int = 42, train_examples: int | None = None, callbacks=None
) -> dict:
    """Throughput over `steps` optimizer steps after `warmup`; with `train_examples`, instead one whole epoch
    over that many examples followed by test accuracy (the throughput then covers the epoch after warmup).
    `callbacks` go to the Trainer (benchmarks/step_profile.py profiles steps through one)."""
    case = CASES[case_name]
    fast = way.startswith("ours")
    set_seed(seed)
    tokenizer = pad_with_end_of_text(load_tokenizer(case["model"]))
    n_examples = (steps + warmup + 2) * case["batch_size"]
    test = None
    if case["kind"] == "classification":
        dataset, test, collator = classification_data(
            case, way, tokenizer, train_examples or max(n_examples * 4, 2000), seed
        )
        spec = ModelConfig(model=case["model"], attention="auto" if fast else "sdpa")
        model = load_classifier(spec, ["fresh", "rotten"], tokenizer, max_length=case["max_length"])
    else:
        documents = assets.load_dataset_frame("embedded:shakespeare")["text"].tolist()
        blocks = tokens.blocks_from_tokens(tokens.corpus_tokens(documents, tokenizer), case["max_length"])
        test = blocks[-PARITY_TEST_BLOCKS:]  # held out: the end of the corpus
        blocks = blocks[: train_examples or n_examples * 2]  # ours: --packing documents (the recipe's default)
        positions = tokens.document_position_ids(blocks, tokenizer.eos_token_id) if fast else None
        dataset, collator = tokens.lm_dataset(blocks, positions), default_data_collator
        spec = ModelConfig(model=case["model"], attention="auto" if fast else "sdpa")
        model = load_causal_lm(spec, tokenizer, block_size=case["max_length"])
    # the recipes' own model changes: --freeze-*, and for the causal LM our way --lm-loss chunked (not with --compile)
    task = "classification" if case["kind"] == "classification" else "causal_lm"
    model = adapt(model, case["techniques"], task, chunked_lm_loss=fast and way != "ours-compile")
    budget = (
        dict(num_train_epochs=1, learning_rate=1e-4)
        if train_examples
        else dict(max_steps=warmup + steps, learning_rate=1e-5)
    )
    args = TrainingArguments(
        output_dir=scratch_dir(),
        **budget,
        warmup_steps=0.1,
        per_device_train_batch_size=case["batch_size"],
        per_device_eval_batch_size=64,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        logging_strategy="no",
        train_sampling_strategy="group_by_length" if fast and case["kind"] == "classification" else "random",
        torch_compile=way == "ours-compile",
        **precision_flags("auto" if way in ("ours", "ours-compile") else "fp32"),
    )
    trainer = TimedTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        compute_metrics=classification_metrics,
        callbacks=callbacks,
    )
    trainer.train()
    finished = time.perf_counter()  # the last step ends when train() returns (no checkpoint, no eval to wait for)
    log = trainer.step_log[warmup:]
    elapsed = finished - log[0][0]
    useful = sum(s[1] for s in log)
    flops = matmul_flops_per_token(model, case["kind"] == "causal")
    quality = {}
    if train_examples and case["kind"] == "classification":
        quality["test_accuracy"] = trainer.evaluate(test)["eval_accuracy"]
    elif train_examples:
        quality["test_perplexity"] = plain_perplexity(model, test)
    return {
        "case": case_name,
        "way": way,
        "seed": seed,
        "steps": len(log),
        "seconds": elapsed,
        **quality,
        "useful_tokens_per_s": useful / elapsed,
        "examples_per_s": sum(s[3] for s in log) / elapsed,
        "padding_fraction": 1 - useful / sum(s[2] for s in log),
        "gflops_per_s": useful * flops / elapsed / 1e9,
        "flops_per_useful_token": flops,
        "precision": "bf16" if args.bf16 else "fp32",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=list(CASES))
    parser.add_argument("way", choices=WAYS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--train-examples",
        type=int,
        help="train one epoch on this many examples (causal LM: blocks), then test accuracy (perplexity)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    result = measure(args.case, args.way, args.steps, args.warmup, args.seed, train_examples=args.train_examples)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
