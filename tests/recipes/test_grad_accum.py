"""--grad-accum N: the same optimizer steps as the whole --batch-size at once, in N micro-batches."""

import json

import pytest

from common.run import from_argv
from recipes import bert_classification, causal_lm

# fp32, no dropout: what is left to differ is the order of float additions
EXACT = ["--precision", "fp32", "--dropout", "0", "--logging-steps", "1", "--epochs", "2", "--lr", "1e-3"]


def logged_losses(out) -> list[float]:
    return [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]


def run(recipe, args, out):
    from_argv(recipe.main, recipe.DEFAULTS, [*args, "--output-dir", str(out)])
    return logged_losses(out), json.loads((out / "metrics.json").read_text())


def test_a_classifier_with_grad_accum_4_takes_the_steps_of_the_whole_batch(tiny_bert, reviews_csv, tmp_path, caplog):
    args = ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--batch-size", "8", *EXACT]
    whole, whole_metrics = run(bert_classification, args, tmp_path / "whole")
    with caplog.at_level("INFO"):
        split, split_metrics = run(bert_classification, [*args, "--grad-accum", "4"], tmp_path / "split")
    assert "4 micro-batches of 2 examples per step (global batch 8)" in caplog.text
    assert len(split) == len(whole) > 2
    assert split == pytest.approx(whole, abs=1e-4)
    assert split_metrics["test_loss"] == pytest.approx(whole_metrics["test_loss"], abs=1e-4)


def test_a_causal_lm_with_grad_accum_2_takes_the_steps_of_the_whole_batch(tiny_llama, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Line {i}: a player speaks {i % 7} words." for i in range(120)))
    args = ["--model", str(tiny_llama), "--train-file", str(corpus), "--batch-size", "4", "--block-size", "32",
            "--prompt", "", *EXACT]  # fmt: skip
    whole, whole_metrics = run(causal_lm, args, tmp_path / "whole")
    split, split_metrics = run(causal_lm, [*args, "--grad-accum", "2"], tmp_path / "split")
    assert len(split) == len(whole) > 2
    assert split == pytest.approx(whole, abs=1e-4)
    assert split_metrics["test_perplexity"] == pytest.approx(whole_metrics["test_perplexity"], rel=1e-4)


def test_a_batch_that_does_not_split_into_the_micro_batches_is_refused(tiny_bert, reviews_csv, tmp_path, capsys):
    from common.run import command_line

    with pytest.raises(SystemExit) as stop:
        command_line(
            bert_classification.main,
            bert_classification.DEFAULTS,
            ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--batch-size", "10", "--grad-accum", "4",
             "--output-dir", str(tmp_path / "out")],
        )  # fmt: skip
    assert stop.value.code == 2
    assert "--batch-size 10 does not split evenly over 4 micro-batches; use a multiple of 4" in capsys.readouterr().err
