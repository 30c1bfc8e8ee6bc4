"""One training-throughput measurement: a recipe's model and data, run one way (ours or a baseline), N steps.

Run in its own process by benchmarks/bench.py so that peak memory is per run:
  python -m benchmarks.throughput sentiment ours --steps 20

Ways of running (the baselines are faithful to how the tutorials and the standard examples do it):
  ours         the recipe's own TrainingArguments (training_arguments(model=...)) and RecipeTrainer:
               --precision auto (bf16 autocast where native and the step has the matmul work for it: every
               case on a CPU; on a GPU the causal LM and large batches, the classifiers' defaults in fp32 with
               TF32), each batch padded to its own longest example (to a multiple of 8 on CUDA only),
               length-grouped batches, truncation at the recipe's --max-length, --attention auto (eager at
               these lengths on a CPU), the loss checked for NaN only when logged; causal LM: --packing
               documents, --lm-loss auto (chunked on a CPU); the recipe's --freeze-layers / --freeze-embeddings
  ours-fp32    the same in plain fp32; ours-compile: the same plus --compile
  hf-examples  fp32, every example padded to max_seq_length=128 (run_glue's default); for the causal LM,
               the same concatenate-and-chunk blocks in fp32; transformers' default attention (SDPA) and loss
  seeds        fp32, the whole set tokenized with padding=True: every example padded to the longest in the set

FLOPs are counted per *useful* (non-pad) token as matmul work: forward 2 x (all non-embedding weights, plus
the LM head for the causal LM), backward 4 x (the trainable ones). Attention-score FLOPs (small at these
lengths) and padding are not counted, so padding shows up as lost throughput, as it should.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from common.data import tables, tokens  # noqa: E402
from common.evaluate.metrics import classification_metrics  # noqa: E402
from common.model import (  # noqa: E402
    adapt,
    load_causal_lm,
    load_classifier,
    load_tokenizer,
    matmul_flops_per_token,
    pad_with_end_of_text,
)
from common.runtime import hardware, precision_flags, scratch_dir  # noqa: E402
from common.train import RecipeTrainer, training_arguments  # noqa: E402
from recipes import bert_classification, causal_lm, gpt2_sentiment  # noqa: E402

# Each case is a recipe's DEFAULTS (model, techniques, batch size, length), so the bench follows the recipes
CASES = {
    "sentiment": dict(config=gpt2_sentiment.DEFAULTS, kind="classification"),
    "bert": dict(config=bert_classification.DEFAULTS, kind="classification"),
    "causal_lm": dict(config=causal_lm.DEFAULTS, kind="causal"),
}
# ours-fp32: our data path without bf16; ours-compile: ours plus --compile (compile time excluded by the warmup)
WAYS = ("ours", "ours-fp32", "ours-compile", "hf-examples", "seeds")


# what --max-length auto takes for the embedded snippets, with either model (tests/common/data/test_lengths.py)
SNIPPET_LENGTH = 64


def case_length(config) -> int:
    if config.task == "causal_lm":
        return config.data.block_size
    return SNIPPET_LENGTH if config.data.max_length == "auto" else config.data.max_length


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timed:
    """Mixed into a Trainer class: times the optimizer steps after `warmup` and counts their real and padded
    tokens, without making the host wait for the GPU on any step but the first timed one."""

    def start_timing(self, warmup: int) -> None:
        self.warmup, self.steps_seen, self.started = warmup, 0, None
        self.useful = torch.zeros((), dtype=torch.int64)  # moved to the batch's device at the first step
        self.tokens = self.examples = 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.steps_seen == self.warmup:
            synchronize()  # the warm-up steps' kernels end before the clock starts
            self.started = time.perf_counter()
        if self.steps_seen >= self.warmup:
            ids, mask = inputs["input_ids"], inputs.get("attention_mask")
            self.useful = self.useful.to(ids.device) + (mask.sum() if mask is not None else ids.numel())
            self.tokens += ids.numel()
            self.examples += ids.shape[0]
        self.steps_seen += 1
        return super().training_step(model, inputs, num_items_in_batch)


class TimedTrainer(Timed, Trainer):
    pass


class TimedRecipeTrainer(Timed, RecipeTrainer):
    pass


def classification_data(case: dict, way: str, tokenizer, n_train: int, seed: int):
    """(train, test, collator), from the same cleaned, seeded 80/10/10 split as the recipes, padded `way`'s way."""
    import datasets

    splits = tables.clean({"train": assets.load_dataset_frame("embedded:rotten-tomatoes")}, ["text"], "label")
    splits = tables.split(splits, seed, stratify="label")
    splits = {"train": tables.subsample(splits["train"], n_train, seed), "test": splits["test"]}
    splits, _ = tables.encode_labels(splits, "label")

    def encode(frame):
        if way.startswith("ours"):  # ours, ours-fp32, ours-compile: the recipes' own data path
            return tokens.classification_dataset(frame, tokenizer, ["text"], case_length(case["config"]))
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
    case_name: str,
    way: str,
    steps: int,
    warmup: int,
    seed: int = 42,
    train_examples: int | None = None,
    callbacks=None,
    batch_size: int | None = None,
) -> dict:
    """Throughput over `steps` optimizer steps after `warmup`; with `train_examples`, instead one whole epoch
    over that many examples followed by test accuracy (the throughput then covers the epoch after warmup).
    `callbacks` go to the Trainer (benchmarks/step_profile.py profiles steps through one); `batch_size` replaces
    the recipe's (every way)."""
    case = CASES[case_name]
    config = case["config"].derive(output_dir="unused", report_to="none", seed=seed)
    if batch_size:
        config = config.derive(batch_size=batch_size)
    if way == "ours-fp32":
        config = config.derive(precision="fp32")
    if way == "ours-compile":
        config = config.derive(compile=True)
    fast = way.startswith("ours")
    batch_size, length = config.training.batch_size, case_length(config)
    set_seed(seed)
    tokenizer = pad_with_end_of_text(load_tokenizer(config.model.model))
    n_examples = (steps + warmup + 2) * batch_size
    spec = config.model if fast else dataclasses.replace(config.model, attention="sdpa")
    test = None
    if case["kind"] == "classification":
        dataset, test, collator = classification_data(
            case, way, tokenizer, train_examples or max(n_examples * 4, 2000), seed
        )
        model = load_classifier(spec, ["fresh", "rotten"], tokenizer, max_length=length)
    else:
        documents = assets.load_dataset_frame("embedded:shakespeare")["text"].tolist()
        ids, starts = tokens.corpus_tokens(documents, tokenizer)
        blocks = tokens.blocks_from_tokens(ids, length, starts=starts)
        test = blocks.ids[-PARITY_TEST_BLOCKS:]  # held out: the end of the corpus
        blocks = blocks[: train_examples or n_examples * 2]  # ours: --packing documents (the recipe's default)
        positions = tokens.document_position_ids(blocks.starts) if fast else None
        dataset, collator = tokens.lm_dataset(blocks.ids, positions), default_data_collator
        model = load_causal_lm(spec, tokenizer, block_size=length)
    # the recipes' own model changes: --freeze-*; for the causal LM our way the loss --lm-loss auto picks here
    chunked = fast and config.task == "causal_lm" and config.training.chunked_lm_loss
    model = adapt(model, config.techniques, chunked_lm_loss=chunked)
    budget = (
        dict(num_train_epochs=1, learning_rate=1e-4)
        if train_examples
        else dict(max_steps=warmup + steps, learning_rate=1e-5)
    )
    common = dict(eval_strategy="no", per_device_eval_batch_size=64, disable_tqdm=True, **budget)
    if fast:  # the recipes' own TrainingArguments and Trainer, logging every --logging-steps as the recipes do
        args = training_arguments(config, scratch_dir(), model=model, **common)
        trainer_class = TimedRecipeTrainer
    else:  # a plain Trainer as the examples and tutorials set it up
        args = TrainingArguments(
            output_dir=scratch_dir(),
            warmup_steps=0.1,
            per_device_train_batch_size=batch_size,
            report_to="none",
            save_strategy="no",
            use_cpu=not torch.cuda.is_available(),
            seed=seed,
            logging_strategy="no",
            **precision_flags("fp32"),
            **common,
        )
        trainer_class = TimedTrainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        compute_metrics=classification_metrics,
        callbacks=callbacks,
    )
    trainer.start_timing(warmup)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    synchronize()
    finished = time.perf_counter()  # the last step ends when its kernels do (no checkpoint, no eval to wait for)
    elapsed = finished - trainer.started
    useful = int(trainer.useful)
    flops = matmul_flops_per_token(model)
    quality = {}
    if train_examples and case["kind"] == "classification":
        quality["test_accuracy"] = trainer.evaluate(test)["eval_accuracy"]
    elif train_examples:
        quality["test_perplexity"] = plain_perplexity(model, test)
    gpu = {}
    if torch.cuda.is_available():
        gpu["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return {
        "case": case_name,
        "way": way,
        "seed": seed,
        "device": hardware(),
        "batch_size": batch_size,
        "steps": trainer.steps_seen - warmup,
        "seconds": elapsed,
        **quality,
        "useful_tokens_per_s": useful / elapsed,
        "examples_per_s": trainer.examples / elapsed,
        "padding_fraction": 1 - useful / trainer.tokens,
        "gflops_per_s": useful * flops / elapsed / 1e9,
        "flops_per_useful_token": flops,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **gpu,
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
    parser.add_argument("--batch-size", type=int, help="instead of the recipe's default batch (every way)")
    args = parser.parse_args(argv)
    result = measure(
        args.case,
        args.way,
        args.steps,
        args.warmup,
        args.seed,
        train_examples=args.train_examples,
        batch_size=args.batch_size,
    )
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
