"""The baselines beside a classifier (common.evaluate.baseline): computed on the run's own split, shown in the
terminal, metrics.json, report.md and the model card, and said plainly when the model does not beat them."""

import json

import pandas as pd
import pytest

from common.evaluate.baseline import baseline_metrics, baseline_table, not_beaten
from common.run import from_argv
from recipes import bert_classification


def trigger_rows(n: int, offset: int = 0) -> pd.DataFrame:
    """Texts whose label is decided by one word: TF-IDF + logistic regression learns it from a few dozen rows."""
    fillers = ["the", "a", "some", "this", "that", "one", "my", "your"]
    rows = []
    for i in range(offset, offset + n):
        word = "splendid" if i % 3 else "dreadful"
        rows.append({"text": f"{fillers[i % 8]} film was {word} {fillers[(i * 5) % 8]} day {i}", "label": i % 3 > 0})
    return pd.DataFrame(rows).assign(label=lambda f: f["label"].map({True: "pos", False: "neg"}))


def test_baselines_are_scored_on_the_test_split_from_the_training_rows():
    train, test = trigger_rows(90), trigger_rows(30, offset=90)
    splits = {
        name: f.assign(labels=(f["label"] == "pos").astype(int)) for name, f in [("train", train), ("test", test)]
    }
    scores = baseline_metrics(splits, ["text"], 2)
    assert scores["test_majority_accuracy"] == pytest.approx(20 / 30)  # always "pos", 2 in 3 test rows
    assert scores["test_majority_macro_f1"] == pytest.approx(0.4)  # F1 0.8 for pos, 0 for neg
    assert scores["test_tfidf_accuracy"] == 1.0 and scores["tfidf_training_rows"] == 90
    one_class = {"train": splits["train"].assign(labels=1), "test": splits["test"]}
    assert "test_tfidf_accuracy" not in baseline_metrics(one_class, ["text"], 2)  # nothing to fit: majority only


def test_a_model_that_does_not_beat_a_baseline_is_told_so_with_the_numbers():
    metrics = {"test_accuracy": 0.70, "test_macro_f1": 0.60, "test_majority_accuracy": 0.66}
    metrics |= {"test_majority_macro_f1": 0.40, "test_tfidf_accuracy": 0.99, "test_tfidf_macro_f1": 0.98}
    metrics |= {"tfidf_fit_seconds": 0.4, "tfidf_training_rows": 1234}
    (said,) = not_beaten(metrics)
    assert "does not beat the TF-IDF + logistic regression baseline (fit in 0.40 s on 1,234 training rows)" in said
    assert "accuracy 0.9900 and macro-F1 0.9800 on the same test split, the model 0.7000 and 0.6000" in said
    assert len(not_beaten({**metrics, "test_accuracy": 0.65})) == 2  # below the majority class too
    assert not_beaten({**metrics, "test_accuracy": 0.995, "test_macro_f1": 0.99}) == []
    assert "| TF-IDF + logistic regression | 0.9900 | 0.9800 |" in baseline_table(metrics)
    assert baseline_table({"test_accuracy": 0.7, "test_macro_f1": 0.6}) == []


def test_a_run_where_tfidf_wins_says_so_everywhere_and_baseline_none_turns_it_off(tiny_bert, tmp_path, capsys):
    data = tmp_path / "trigger.csv"
    pd.concat([trigger_rows(150)]).to_csv(data, index=False)
    flags = ["--model", tiny_bert, "--train-file", data, "--epochs", "1", "--max-length", "16", "--batch-size", "32"]
    metrics = from_argv(
        bert_classification.main, bert_classification.DEFAULTS, [*flags, "--output-dir", tmp_path / "a"]
    )
    # the tiny random-weight encoder learns little in 4 steps; the baseline reads the trigger word
    assert metrics["test_tfidf_accuracy"] == 1.0 > metrics["test_accuracy"]
    assert "test_tfidf_accuracy" in capsys.readouterr().out
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["test_tfidf_accuracy"] == 1.0 and "test_majority_accuracy" in saved
    report = (tmp_path / "a" / "report.md").read_text()
    assert "The model does not beat the TF-IDF + logistic regression baseline" in report
    assert "| TF-IDF + logistic regression | 1.0000 | 1.0000 |" in report
    card = (tmp_path / "a" / "README.md").read_text()
    assert "TF-IDF + logistic regression 1.0000 accuracy" in card and "does not beat" in card

    metrics = from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [*flags, "--output-dir", tmp_path / "b", "--baseline", "none"],
    )
    assert not [name for name in metrics if "tfidf" in name or "majority" in name]
    assert "TF-IDF" not in (tmp_path / "b" / "report.md").read_text()
