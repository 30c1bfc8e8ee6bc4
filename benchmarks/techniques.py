"""The fine-tuning techniques side by side on the decoder recipe: same seed, same data, same budget.

  python -m benchmarks.techniques                 # ~20 min on 2 CPU cores
  python -m benchmarks.techniques --train 6000    # the recipe's default budget (~1 h)

Each row is a real `recipes/gpt2_sentiment.py` run (its own process) on the embedded Rotten Tomatoes data;
test accuracy is on the whole test split. Results: benchmarks/results/techniques.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.bench import RESULTS, run_recipe, write_results

# name -> extra flags; everything else is the recipe's default (seed 42, lr 1e-4, batch 16, max 64 tokens)
TECHNIQUES = {
    "plain fine-tuning (all 30 blocks)": ["--freeze-layers", "0"],
    "freezing (bottom 20 of 30 blocks)": ["--freeze-layers", "20"],
    "gradual unfreezing (a block every 4 steps)": ["--freeze-layers", "0", "--gradual-unfreeze", "4"],
    "layer-wise LR decay 0.9": ["--freeze-layers", "0", "--layer-lr-decay", "0.9"],
    "LoRA r=8 (lr 5e-4)": ["--freeze-layers", "0", "--lora-r", "8", "--lr", "5e-4"],
}


def run(name: str, flags: list[str], n_train: int) -> dict:
    command = [sys.executable, "recipes/gpt2_sentiment.py", "--max-train-samples", str(n_train), *flags]
    metrics, seconds, _ = run_recipe(command, RESULTS / "tmp-techniques")
    return {
        "technique": name,
        "flags": " ".join(flags),
        "test_accuracy": metrics["test_accuracy"],
        "test_macro_f1": metrics["test_macro_f1"],
        "train_seconds": metrics["train_runtime"],
        "wall_seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000, help="training snippets (1 epoch)")
    args = parser.parse_args(argv)
    rows = []
    for name, flags in TECHNIQUES.items():
        rows.append(run(name, flags, args.train))
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        f"SmolLM2-135M on Rotten Tomatoes, {args.train} training snippets, 1 epoch, seed 42, test = 1,275 snippets.",
        "",
        "| technique | flags | test accuracy | macro-F1 | training time |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['technique']} | `{r['flags']}` | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | {r['train_seconds']:.0f} s |"
        for r in rows
    ]
    write_results("techniques", rows, lines)


if __name__ == "__main__":
    main()
