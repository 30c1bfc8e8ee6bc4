"""Bad input, as a user meets it: one line naming the problem and the fix, exit status 2, no traceback, nothing written."""

import pytest

from tests.conftest import TINY_DECODER_RUN, run_recipe


def assert_clean_failure(result, expected, output_dir):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not output_dir.exists()


@pytest.mark.parametrize(
    "recipe, args, expected",
    [
        ("bert_classification", ["--train-file", "missing.csv"], "'missing.csv' does not exist"),
        (
            "bert_classification",
            ["--train-file", "{csv}", "--text-column", "review"],
            "column 'review' is not in the train data",
        ),
        ("bert_classification", ["--train-file", "{empty}"], "no rows left after cleaning"),
        ("bert_classification", ["--train-file", "{one_class}"], "has only one class ('pos')"),
        (
            "gpt2_sentiment",
            ["--train-file", "{csv}", "--model", "no-such-model-xyz"],
            "could not load model 'no-such-model-xyz'",
        ),
        ("gpt2_sentiment", ["--epochs", "0"], "--epochs: must be greater than 0"),
        (
            "causal_lm",
            ["--train-file", "{csv}", "--model", "{tiny_llama}", "--block-size", "250"],
            "fewer than one block",
        ),
    ],
)
def test_bad_input_is_one_clear_line(recipe, args, expected, tmp_path, reviews_frame, tiny_llama):
    reviews_frame.to_csv(tmp_path / "reviews.csv", index=False)
    (tmp_path / "empty.csv").write_text("text,label\n")
    reviews_frame.assign(label="pos").to_csv(tmp_path / "one.csv", index=False)
    files = {
        "csv": tmp_path / "reviews.csv",
        "empty": tmp_path / "empty.csv",
        "one_class": tmp_path / "one.csv",
        "tiny_llama": tiny_llama,
    }
    out = tmp_path / "out"
    result = run_recipe(recipe, *[a.format(**files) for a in args], "--output-dir", out, cwd=tmp_path)
    assert_clean_failure(result, expected, out)


def test_existing_output_is_not_overwritten_without_asking(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"test_accuracy": 0.99}')
    (out / ".lm-recipes-run").write_text('{"written_by": "lm-recipes", "files": ["metrics.json"]}')
    result = run_recipe("bert_classification", "--output-dir", out)
    assert result.returncode == 2 and "pass --overwrite" in result.stderr
    assert (out / "metrics.json").read_text() == '{"test_accuracy": 0.99}'


@pytest.mark.parametrize("recipe", ["gpt2_sentiment", "bert_classification", "causal_lm"])
def test_help_lists_the_common_flags(recipe):
    result = run_recipe(recipe, "--help")
    assert result.returncode == 0
    for flag in (
        "--model",
        "--train-file",
        "--dataset",
        "--epochs",
        "--lr",
        "--batch-size",
        "--max-train-samples",
        "--output-dir",
        "--seed",
    ):
        assert flag in result.stdout


def test_local_runs_never_touch_the_network(tiny_gpt2, reviews_csv, tmp_path):
    """Without the offline switches and with every proxy pointing at a closed port, a local run still works."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(
        PYTHONPATH=str(ROOT),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "recipes" / "gpt2_sentiment.py"),
            "--model",
            str(tiny_gpt2),
            "--train-file",
            str(reviews_csv),
            "--output-dir",
            str(tmp_path / "out"),
            *TINY_DECODER_RUN,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "model.safetensors").exists()
