"""--compile through the recipes: a bounded number of compiles, every held-out example still evaluated."""

import json
import logging
import re

import pytest

from common.data import classification_splits
from common.run import from_argv
from recipes import bert_classification, causal_lm

pytestmark = pytest.mark.slow  # compiling takes 10-30 s on a 2-core CPU


def recompiles(caplog) -> int:
    report = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("--compile: "))
    return int(re.search(r"then (\d+) recompile\(s\)", report).group(1))


def compiled_run(recipe, data: list[str], out, caplog) -> int:
    """Run `recipe` with --compile on `data` flags (a tiny model, fp32); the recompiles it logged."""
    with caplog.at_level(logging.INFO):
        from_argv(recipe.main, recipe.DEFAULTS, [*data, "--output-dir", str(out), "--compile", "--precision", "fp32"])
    return recompiles(caplog)


def test_compiled_classifier_compiles_at_most_twice_and_evaluates_every_example(
    tiny_bert, reviews_csv, tmp_path, caplog
):
    """Texts of many lengths: the first shape, then one dynamic-length graph; no recompile for a config the model's
    first call changes (problem_type), nor for the epoch's last, smaller batch (dropped in training only)."""
    out = tmp_path / "out"
    data = ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--epochs", "2", "--batch-size", "8",
            "--max-length", "32"]  # fmt: skip
    assert compiled_run(bert_classification, data, out, caplog) <= 1
    config = bert_classification.DEFAULTS.derive(train_file=str(reviews_csv), output_dir="unused")
    test_rows = len(classification_splits(config.data, config.training.seed)[0]["test"])
    confusion = json.loads((out / "evaluation.json").read_text())["test"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == test_rows


def test_compiled_causal_lm_trains_without_recompiling(tiny_llama, tmp_path, caplog):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Line {i} of a small play, spoken by a player." for i in range(300)))
    out = tmp_path / "out"
    data = ["--model", str(tiny_llama), "--train-file", str(corpus), "--block-size", "32", "--batch-size", "4",
            "--epochs", "1", "--prompt", ""]  # fmt: skip
    assert compiled_run(causal_lm, data, out, caplog) == 0  # every block has the same length
    assert json.loads((out / "metrics.json").read_text())["test_perplexity"] > 1
