"""The chat recipe against TRL's SFTTrainer: the same model, conversations, micro-batch and steps, each way in its
own process, side by side in one run.

  python -m benchmarks.chat_sft               # ~15 min on 2 CPU cores
  python -m benchmarks.chat_sft --steps 40

Ways (the same embedded SmolLM2-135M-Instruct, the same 16 x STEPS ChatterBot training conversations of the recipe's
own split as prompt/completion pairs, one epoch at lr 1e-4 with 10% warmup, linear decay and weight decay 0.01, seed
42; the loss on the last reply of each conversation, whose mask equals TRL's completion mask token for token,
tests/common/data/test_chat.py):
  ours               recipes/chat_sft.py --train-on last: --precision auto, length-grouped batches padded to their own
                     longest, --lm-loss auto (chunked on a CPU), --attention auto
  ours-packed        the same with --packing (rows of up to --max-length tokens: fewer, longer rows, fewer steps)
  ours-standard-loss the same with the model's own loss (--lm-loss standard): the full logits in fp32
  ours-random-order  the same with batches in random order (train_sampling_strategy=random): more padding
  trl                SFTTrainer with SFTConfig's own defaults for everything above (bf16, gradient checkpointing on,
                     batches padded to their longest in dataset order, the model's own loss and attention)
  trl-no-checkpoint  the same with gradient_checkpointing=False, TRL's fastest plain setting here
Measured: trained (reply) tokens per second of training, the process's peak resident memory, and the loss of the
held-out test replies after training, computed the same way for every way. TRL is a benchmark dependency only.
Results: benchmarks/results/chat_sft.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WAYS = ("ours", "ours-packed", "ours-standard-loss", "ours-random-order", "trl", "trl-no-checkpoint")
# what each of our variants adds to the recipe's flags: what makes the difference, one thing at a time
OURS = {
    "ours": [],
    "ours-packed": ["--packing"],
    "ours-standard-loss": ["--lm-loss", "standard"],
    "ours-random-order": ["--trainer-arg", "train_sampling_strategy=random"],
}
BATCH, LR, SEED = 16, 1e-4, 42


def conversations(steps: int) -> tuple[list, list]:
    """The recipe's own split of the embedded corpus: the first BATCH x steps training conversations, and the test."""
    from common.data.conversations import conversation_splits
    from recipes import chat_sft

    splits = conversation_splits(chat_sft.DEFAULTS.data, SEED)
    return splits["train"][: BATCH * steps], splits["test"]


def held_out_loss(model, tokenizer, test: list) -> float:
    """The mean loss of the test conversations' last replies, weighted by token (the same for every way)."""
    import torch

    from common.data.chat import IGNORE, ChatCollator, encode

    encoded = encode(tokenizer, test, "last", "the test data")
    rows = [{"input_ids": i, "labels": label} for i, label in zip(encoded["input_ids"], encoded["labels"])]
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            batch = ChatCollator(tokenizer.pad_token_id)(rows[start : start + BATCH])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none"
            )
            total += float((losses * (targets != IGNORE)).sum())
            count += int((targets != IGNORE).sum())
    return total / count


def trained_tokens(tokenizer, train: list) -> int:
    from common.data.chat import IGNORE, encode

    encoded = encode(tokenizer, train, "last", "the train data")
    return sum(label != IGNORE for row in encoded["labels"] for label in row)


def ours(steps: int, flags: list[str]) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common.run import from_argv
    from recipes import chat_sft

    train, test = conversations(steps)
    folder = tempfile.mkdtemp(prefix="bench-chat-")
    words = ["--train-on", "last", "--max-train-samples", str(len(train)), "--epochs", "1", "--batch-size", str(BATCH)]
    words += ["--lr", str(LR), "--max-new-tokens", "8", "--output-dir", f"{folder}/run", "--seed", str(SEED), *flags]
    metrics = from_argv(chat_sft.main, chat_sft.DEFAULTS, words)
    tokenizer = AutoTokenizer.from_pretrained(f"{folder}/run")
    model = AutoModelForCausalLM.from_pretrained(f"{folder}/run")
    return {"seconds": metrics["train_runtime"], "tokens": trained_tokens(tokenizer, train),
            "held_out_loss": held_out_loss(model, tokenizer, test)}  # fmt: skip


def trl(steps: int, checkpointing: bool | None) -> dict:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from common import assets

    train, test = conversations(steps)
    folder = assets.model_dir("embedded:smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in train]
    settings = dict(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=BATCH,
        num_train_epochs=1,
        learning_rate=LR,
        warmup_steps=0.1,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        seed=SEED,
        report_to=[],
        save_strategy="no",
        logging_steps=max(1, steps // 4),
        use_cpu=True,
    )
    if checkpointing is not None:
        settings["gradient_checkpointing"] = checkpointing
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder),
        args=SFTConfig(**settings),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    result = trainer.train()
    return {"seconds": result.metrics["train_runtime"], "tokens": trained_tokens(tokenizer, train),
            "held_out_loss": held_out_loss(trainer.model, tokenizer, test)}  # fmt: skip


def one(way: str, steps: int) -> None:
    result = ours(steps, OURS[way]) if way in OURS else trl(steps, None if way == "trl" else False)
    result.update(way=way, steps=steps, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("way", nargs="?", choices=WAYS, help="run one way (in this process) and print its RESULT")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of 16 conversations each")
    args = parser.parse_args(argv)
    if args.way:
        one(args.way, args.steps)
        return

    from benchmarks.bench import child_result as measure
    from benchmarks.bench import write_results
    from common.runtime import hardware

    rows = [measure("benchmarks.chat_sft", way, "--steps", str(args.steps)) for way in WAYS]
    for row in rows:
        row["tokens_per_second"] = row["tokens"] / row["seconds"]
    base = next(r for r in rows if r["way"] == "trl")["tokens_per_second"]
    lines = [
        f"SmolLM2-135M-Instruct, {BATCH * args.steps} ChatterBot conversations as prompt/completion, micro-batch "
        f"{BATCH}, {args.steps} steps, one process each, side by side on {hardware()}.",
        "",
        "| way | trained tokens/s | vs TRL's defaults | peak memory | held-out reply loss |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['way']} | {r['tokens_per_second']:.0f} | {r['tokens_per_second'] / base:.2f}x | "
        f"{r['peak_rss_mb'] / 1024:.1f} GiB | {r['held_out_loss']:.4f} |"
        for r in rows
    ]
    write_results("chat_sft", rows, lines)
    if not all(math.isfinite(r["held_out_loss"]) for r in rows):
        sys.exit("a way ended with a non-finite held-out loss")


if __name__ == "__main__":
    main()
