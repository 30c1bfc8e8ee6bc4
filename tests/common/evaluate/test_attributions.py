"""Token attributions (common.evaluate.attributions) and explaining a saved run (common.serve.explain): checked
against a case whose answer is known, a model whose label is decided by one word."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from common.evaluate.attributions import token_attributions
from common.run import from_argv
from common.serve.predict import Predictor
from recipes import bert_classification
from tests.conftest import ROOT

FILLERS = ["the", "a", "one", "this", "that", "my", "your", "our"]
NOUNS = ["film", "story", "cast", "plot", "score", "ending", "script", "scene"]


def rows(n: int, seed: int) -> pd.DataFrame:
    """Four words each, drawn at random; the label is whichever trigger word ("splendid" / "dreadful") it holds."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.5
    texts = [
        f"{rng.choice(FILLERS)} {rng.choice(NOUNS)} {'splendid' if g else 'dreadful'} {rng.choice(FILLERS)}"
        for g in good
    ]
    return pd.DataFrame({"text": texts, "label": np.where(good, "pos", "neg")}).drop_duplicates("text")


@pytest.fixture(scope="module")
def trigger_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trigger")
    train, test = rows(200, seed=0), rows(60, seed=1)
    train[~train["text"].isin(test["text"])].to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    metrics = from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        ["--model", tiny_bert, "--train-file", folder / "train.csv", "--test-file", folder / "test.csv",
         "--epochs", "6", "--batch-size", "8", "--lr", "1e-3", "--max-length", "16", "--precision", "fp32",
         "--baseline", "none", "--explain", "4", "--output-dir", folder / "run"],
    )  # fmt: skip
    assert metrics["test_accuracy"] == 1.0  # it reads the trigger word
    return folder


def test_a_model_that_reads_one_word_is_explained_by_that_word(trigger_run):
    run = Predictor(trigger_run / "run")
    for text in ["the plot splendid my", "your cast dreadful one", "a scene dreadful this"]:
        result = token_attributions(run.model, run.tokenizer, (text,), "cpu", ["neg", "pos"])
        scores = dict(zip(result["tokens"], result["scores"]))
        trigger = "splendid" if "splendid" in text else "dreadful"
        top = max((t for t, special in zip(result["tokens"], result["special"]) if not special), key=scores.get)
        assert top == trigger, scores
        assert scores["[CLS]"] == scores["[SEP]"] == 0.0  # special tokens are the baseline's: out of the shading
        # completeness: the attributions add up to the predicted logit minus the baseline's (to the path's
        # discretization: 32 points, 5% on this sharply trained tiny model, 0.1% on MiniLM)
        assert sum(result["scores"]) == pytest.approx(result["difference"], rel=0.1)


def test_a_saved_run_is_explained_from_its_errors_or_any_input(trigger_run, tmp_path):
    (tmp_path / "in.csv").write_text("text,label\nthe plot splendid my,pos\nyour cast dreadful one,pos\n")
    command = [
        sys.executable,
        "-m",
        "common.serve.explain",
        str(trigger_run / "run"),
        "--input",
        str(tmp_path / "in.csv"),
    ]
    done = subprocess.run([*command, "--output", str(tmp_path / "why.html")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "why.html").read_text()
    assert page.count("<h3>") == 2 and "true pos: right" in page and "true pos: wrong" in page
    assert "<span class='special'>[CLS]</span>" in page and "title='+0.0000'" not in page
    again = subprocess.run([*command, "--output", str(tmp_path / "why.html")], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr  # nothing replaced unasked
    # a run with no test errors has no errors.csv rows to start from: the one line says to give --input
    bare = subprocess.run(
        [*command[:4], "--output", str(tmp_path / "e.html")], capture_output=True, text=True, cwd=ROOT
    )
    assert bare.returncode in (0, 2) and "Traceback" not in bare.stderr
