"""The host's cost of one training step, measured where compute costs nothing: a 1-layer BERT of width 16.

  python -m benchmarks.overhead --steps 200 --repeats 5

On a GPU the recipes' small models are bound by the host: Python, dispatch, casts and syncs take longer than
the kernels. A machine without a GPU can still measure that cost, on a model whose matmuls take ~no time:
  ours       the bert recipe's own path: training_arguments(model=...) + RecipeTrainer + its collator and
             sampler, the recipe's logging, --precision auto (which weighs the step's FLOPs: fp32 for a step
             this small, as on a GPU for the classifiers' default steps)
  ours-bf16  the same with --precision bf16: what bf16 autocast's casts and dispatch cost a step
  plain      a plain Trainer, fp32, DataCollatorWithPadding, default arguments (what a tutorial writes) but for
             length-grouped batches, so that both ways run batches of the same shapes and only the step differs
All train on the same tokenized Rotten Tomatoes snippets (max 64 tokens, batch 32). Each way first runs
--warmup steps (an epoch by default): on a CPU, oneDNN builds a bf16 matmul kernel the first time it meets a
shape (each new padded length), which made a first epoch's bf16 steps 2x slower and is paid once per run.
The result is the median milliseconds per optimizer step of each way, best of --repeats interleaved rounds,
and ours / plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from common import assets  # noqa: E402
from common.data import tables, tokens  # noqa: E402
from common.model import adapt, load_classifier  # noqa: E402
from common.runtime import scratch_dir  # noqa: E402
from common.train import RecipeTrainer, training_arguments  # noqa: E402
from recipes import bert_classification  # noqa: E402

BATCH, MAX_LENGTH, ROWS = 32, 64, 4000
EPOCH = ROWS // BATCH  # steps
WAYS = ("ours", "ours-bf16", "plain")


class StepClock(TrainerCallback):
    """Wall time of each optimizer step (on CUDA, after the GPU has finished it)."""

    def __init__(self):
        self.starts: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def milliseconds(self, warmup: int) -> float:
        gaps = [b - a for a, b in zip(self.starts[warmup:], self.starts[warmup + 1 :])]
        return 1000 * statistics.median(gaps)


def tiny_bert(folder: str) -> str:
    """A 1-layer, width-16 BERT with random weights and the real MiniLM tokenizer, saved as from_pretrained reads it."""
    tokenizer = AutoTokenizer.from_pretrained(assets.package_dir("minilm") / "model")
    config = BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=len(tokenizer)
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def training_rows(n: int = ROWS):
    frame = assets.load_dataset_frame("embedded:rotten-tomatoes")
    splits = tables.clean({"train": frame.head(n)}, ["text"], "label")
    splits, labels = tables.encode_labels(splits, "label")
    return splits["train"], labels


def measure(way: str, model_folder: str, steps: int, warmup: int) -> tuple[float, str]:
    """(median ms per step after `warmup` steps, the precision the way trained in)"""
    frame, labels = training_rows()
    config = bert_classification.DEFAULTS.derive(model=model_folder, output_dir="unused", max_length=MAX_LENGTH)
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    dataset = tokens.classification_dataset(frame, tokenizer, ["text"], MAX_LENGTH)
    model = load_classifier(config.model, labels, tokenizer, MAX_LENGTH)
    clock = StepClock()
    budget = dict(max_steps=warmup + steps, report_to="none", disable_tqdm=True, eval_strategy="no")
    if way.startswith("ours"):
        if way == "ours-bf16":
            config = config.derive(precision="bf16")
        model = adapt(model, config.techniques)
        args = training_arguments(config, scratch_dir(), model=model, **budget)
        trainer = RecipeTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=tokens.padding_collator(tokenizer)
        )
    else:
        args = TrainingArguments(
            output_dir=scratch_dir(),
            per_device_train_batch_size=BATCH,
            learning_rate=1e-4,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            train_sampling_strategy="group_by_length",  # the same batch shapes as ours: only the step differs
            **budget,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
        )
    trainer.add_callback(clock)
    trainer.train()
    return clock.milliseconds(warmup), "bf16" if args.bf16 else "fp32"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=EPOCH, help="untimed steps first (default: an epoch)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each way keeps its best")
    args = parser.parse_args(argv)
    best, precision = dict.fromkeys(WAYS, float("inf")), {}
    with tempfile.TemporaryDirectory() as folder:
        model_folder = tiny_bert(folder)
        for _ in range(args.repeats):
            for way in WAYS:
                milliseconds, precision[way] = measure(way, model_folder, args.steps, args.warmup)
                best[way] = min(best[way], milliseconds)
    result = {
        "ours_ms_per_step": best["ours"],
        "ours_precision": precision["ours"],
        "ours_bf16_ms_per_step": best["ours-bf16"],
        "plain_ms_per_step": best["plain"],
        "ours_vs_plain": best["ours"] / best["plain"],
        "ours_bf16_vs_plain": best["ours-bf16"] / best["plain"],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    print(
        f"host overhead per step: ours ({precision['ours']}) {best['ours']:.1f} ms, ours-bf16 {best['ours-bf16']:.1f} "
        f"ms, plain fp32 Trainer {best['plain']:.1f} ms (ours {result['ours_vs_plain']:.2f}x, ours-bf16 "
        f"{result['ours_bf16_vs_plain']:.2f}x)"
    )
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
