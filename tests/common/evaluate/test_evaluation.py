"""common.evaluation through the recipes: error CSV, per-class numbers, attributions, plots, report.md, causal-LM analysis."""

import json

import numpy as np
import pandas as pd
import pytest

from common.evaluate import attributions
from common.run import from_argv
from recipes import causal_lm, gpt2_sentiment
from tests.conftest import TINY_DECODER_RUN


@pytest.fixture(scope="module")
def classifier_run(tiny_gpt2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluated")
    rng = np.random.default_rng(0)
    words = ["joy", "mess", "warm", "dull", "bright", "flat"]

    def rows(n):
        return pd.DataFrame(
            {"text": [" ".join(rng.choice(words, 4)) for _ in range(n)], "label": rng.choice(["pos", "neg"], n)}
        )

    rows(40).to_csv(folder / "train.csv", index=False)
    test = rows(30).drop_duplicates("text")
    test.assign(id=[f"review-{i}" for i in range(len(test))], source="web").to_csv(folder / "test.csv", index=False)
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--model",
            str(tiny_gpt2),
            "--train-file",
            str(folder / "train.csv"),
            "--test-file",
            str(folder / "test.csv"),
            "--output-dir",
            str(folder / "run"),
            *TINY_DECODER_RUN,
            "--explain",
            "3",
        ],
    )
    return folder


def test_error_csv_holds_exactly_the_misclassified_test_rows_most_confident_first(classifier_run):
    run = classifier_run / "run"
    test = pd.read_csv(classifier_run / "test.csv")
    predicted = modeling_predictions(run, test["text"].tolist())
    errors = pd.read_csv(run / "errors.csv")
    wrong = test[np.array(predicted) != test["label"].to_numpy()]
    assert sorted(errors["text"]) == sorted(wrong["text"])
    assert (errors["true_label"] != errors["predicted_label"]).all()
    assert errors["probability"].is_monotonic_decreasing and (errors["probability"] >= 0.5).all()
    # every input column comes along, so errors.csv joins back to the user's rows by their own id
    assert {"id", "source", "label"} <= set(errors.columns)
    joined = errors.merge(test, on="id", suffixes=("", "_test"))
    assert len(joined) == len(errors) and (joined["text"] == joined["text_test"]).all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(1 - len(wrong) / len(test))


def modeling_predictions(run, texts):
    from common.serve.predict import Predictor
    from common.tasks.classification import classify

    return [p["label"] for p in classify(Predictor(run), texts)]


def test_confusion_matrix_per_class_report_and_json_agree(classifier_run):
    run = classifier_run / "run"
    details = json.loads((run / "evaluation.json").read_text())
    n_test = len(pd.read_csv(classifier_run / "test.csv"))
    matrix = details["test"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == n_test and details["test"]["labels"] == ["neg", "pos"]
    per_class = pd.read_csv(run / "per_class.csv")
    assert per_class["support"].sum() == n_test and per_class["support"].tolist() == [sum(r) for r in matrix]
    assert "eval_loss" in details["validation"] and "mcc" in details["test"] and "roc_auc" in details["test"]
    for picture in ("confusion_matrix.png", "training_curves.png"):
        assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_md_is_the_page_to_read_first(classifier_run):
    report = (classifier_run / "run" / "report.md").read_text()
    metrics = json.loads((classifier_run / "run" / "metrics.json").read_text())
    for part in (
        "## Metrics",
        "## Data",
        "## Per class (test)",
        "## The most confident errors",
        "## Training",
        "![loss and validation metric over steps](training_curves.png)",
        "## Explanations",
        "## Configuration",
        '"explain": 3',
        "| accuracy |",
        f"{metrics['test_accuracy']:.4f}",
        "| test | ",
        "The test accuracy's 95% interval: ",
    ):
        assert part in report, part
    assert "micro_f1" not in report  # single-label: it would only repeat the accuracy


def test_a_small_random_label_run_is_doubted_above_its_metrics(classifier_run):
    # 40 rows of random labels (36 after the validation split), batch 4, one epoch: 9 steps that cannot learn
    report = (classifier_run / "run" / "report.md").read_text()
    caveats = report[report.index("## Read this before the metrics") : report.index("## Metrics")]
    assert "**Only 9 optimizer steps: too few for the model to learn much." in caveats
    assert "the loss of always predicting the training class frequencies" in caveats
    assert "The test split has 30 examples" in caveats


def test_attributions_have_one_value_per_token(classifier_run, tiny_gpt2):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = classifier_run / "run"
    tokenizer = AutoTokenizer.from_pretrained(run)
    model = AutoModelForSequenceClassification.from_pretrained(run)
    result = attributions.token_attributions(model, tokenizer, ("a warm and bright joy",), "cpu", ["neg", "pos"])
    assert len(result["scores"]) == len(result["tokens"]) == len(tokenizer("a warm and bright joy")["input_ids"])
    assert result["predicted"] in ("neg", "pos") and any(s != 0 for s in result["scores"])
    page = (run / "explain.html").read_text()
    assert page.count("<h3>") == 3 and page.count("<span") >= 3 * 4


@pytest.mark.parametrize("block_size", [48, 16])  # 16: shorter than the usual 32-token prompt
def test_causal_lm_report_has_hardest_passages_and_continuation_scores(tiny_llama, tmp_path, block_size):
    import sacrebleu

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small text" for i in range(300)))
    out = tmp_path / "out"
    from_argv(
        causal_lm.main,
        causal_lm.DEFAULTS,
        [
            "--model",
            str(tiny_llama),
            "--train-file",
            str(corpus),
            "--output-dir",
            str(out),
            "--block-size",
            str(block_size),
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--precision",
            "fp32",
            "--max-train-samples",
            "8",
        ],
    )
    passages = pd.read_csv(out / "hardest_passages.csv")
    assert passages["loss"].is_monotonic_decreasing and np.allclose(passages["perplexity"], np.exp(passages["loss"]))
    continuations = pd.read_csv(out / "continuations.csv", keep_default_na=False)
    metrics = json.loads((out / "metrics.json").read_text())
    bleu = sacrebleu.corpus_bleu(continuations["generated"].tolist(), [continuations["reference"].tolist()]).score
    assert metrics["test_continuation_bleu"] == pytest.approx(bleu)
    assert (continuations["reference"].str.strip().str.len() > 0).all()  # each prompt has text to be scored against
    report = (out / "report.md").read_text()
    assert "## The hardest test passages" in report and "chrF" in report and "| test | " in report
