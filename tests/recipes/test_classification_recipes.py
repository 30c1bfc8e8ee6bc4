"""Both classification recipes end to end on tiny random-weight models (the real tokenizers), a few steps."""

import json

import pandas as pd
import pytest
from safetensors.torch import load_file

from common.run import from_argv
from recipes import bert_classification, gpt2_sentiment

FAST = ["--epochs", "1", "--batch-size", "4", "--max-length", "32", "--precision", "fp32", "--freeze-layers", "1"]


def test_gpt2_sentiment_trains_evaluates_and_saves_a_gpt2_format_model(tiny_gpt2, reviews_csv, tmp_path, capsys):
    out = tmp_path / "out"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        ["--model", str(tiny_gpt2), "--train-file", str(reviews_csv), "--output-dir", str(out), *FAST],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and "test_macro_f1" in metrics
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["pad_token_id"] == 50256
    assert "score.weight" in load_file(out / "model.safetensors")
    assert "test_accuracy" in capsys.readouterr().out


def test_bert_classification_handles_integer_labels_and_three_classes(tiny_bert, tmp_path):
    rows = [(f"sample text number {i} " + ["good", "okay", "bad"][i % 3], i % 3) for i in range(60)]
    path = tmp_path / "three.jsonl"
    pd.DataFrame(rows, columns=["body", "stars"]).to_json(path, orient="records", lines=True)
    out = tmp_path / "out"
    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--model",
            str(tiny_bert),
            "--train-file",
            str(path),
            "--text-column",
            "body",
            "--label-column",
            "stars",
            "--output-dir",
            str(out),
            *FAST,
        ],
    )
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1", "2": "2"}
    assert json.loads((out / "run_config.json").read_text())["label_column"] == "stars"


def test_bert_classification_sentence_pairs_with_given_splits(tiny_bert, tmp_path):
    def pairs(n, offset):
        return pd.DataFrame(
            {
                "s1": [f"the cat sat on mat {i}" for i in range(offset, offset + n)],
                "s2": [
                    f"a cat is sitting {i}" if i % 2 else f"stocks fell sharply {i}" for i in range(offset, offset + n)
                ],
                "label": ["paraphrase" if i % 2 else "different" for i in range(offset, offset + n)],
            }
        )

    files = {}
    for split, (n, offset) in {"train": (30, 0), "validation": (6, 100), "test": (6, 200)}.items():
        files[split] = tmp_path / f"{split}.csv"
        pairs(n, offset).to_csv(files[split], index=False)
    out = tmp_path / "out"
    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--model",
            str(tiny_bert),
            "--train-file",
            str(files["train"]),
            "--validation-file",
            str(files["validation"]),
            "--test-file",
            str(files["test"]),
            "--text-column",
            "s1",
            "s2",
            "--output-dir",
            str(out),
            *FAST,
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_samples_per_second"] > 0 and "test_accuracy" in metrics


def test_same_seed_same_metrics(tiny_gpt2, reviews_csv, tmp_path):
    runs = []
    for name in ("a", "b"):
        from_argv(
            gpt2_sentiment.main,
            gpt2_sentiment.DEFAULTS,
            ["--model", str(tiny_gpt2), "--train-file", str(reviews_csv), "--output-dir", str(tmp_path / name), *FAST],
        )
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert runs[0]["test_loss"] == pytest.approx(runs[1]["test_loss"], abs=1e-6)
    assert runs[0]["train_loss"] == pytest.approx(runs[1]["train_loss"], abs=1e-6)
