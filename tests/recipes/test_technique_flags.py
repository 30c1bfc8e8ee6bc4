"""The technique flags through the real recipes (tiny random-weight models, a few steps)."""

import json
import logging

import pandas as pd
import torch

from common.model import lora
from common.run import from_argv
from recipes import bert_classification, causal_lm, gpt2_sentiment

FAST = ["--epochs", "1", "--batch-size", "4", "--max-length", "32", "--precision", "fp32"]


def test_lora_run_saves_an_adapter_that_reloads_to_the_same_predictions(tiny_llama, reviews_csv, tmp_path):
    out = tmp_path / "lora"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--model",
            str(tiny_llama),
            "--train-file",
            str(reviews_csv),
            "--output-dir",
            str(out),
            "--lora-r",
            "4",
            "--lr",
            "1e-2",
            "--freeze-layers",
            "1",
            *FAST,
        ],
    )
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    from safetensors.torch import load_file

    adapted = {k for k in load_file(out / "adapter_model.safetensors") if "lora_A" in k}
    assert adapted and all(".layers.1." in k for k in adapted)  # --freeze-layers 1: no adapters in block 0
    metrics = json.loads((out / "metrics.json").read_text())
    model = lora.load(out)
    test = pd.read_csv(reviews_csv)  # the recipe's test split is a subset; scoring them all is enough here
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tokenizer(test["text"].tolist(), padding=True, return_tensors="pt")).logits
    assert logits.shape == (len(test), 2) and model.config.id2label == {0: "neg", 1: "pos"}
    assert 0 <= metrics["test_accuracy"] <= 1


def test_sliding_windows_class_weights_augment_and_early_stopping_in_one_run(tiny_bert, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    long = [" ".join(["wonderful"] * 40 + [f"w{i}"]) for i in range(12)] + [
        " ".join(["awful"] * 40 + [f"w{i}"]) for i in range(12)
    ]
    pd.DataFrame({"text": long, "label": ["pos"] * 12 + ["neg"] * 12}).to_csv(tmp_path / "long.csv", index=False)
    out = tmp_path / "out"
    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--model",
            str(tiny_bert),
            "--train-file",
            str(tmp_path / "long.csv"),
            "--output-dir",
            str(out),
            "--long-text",
            "sliding-window",
            "--max-length",
            "16",
            "--stride",
            "4",
            "--class-weights",
            "auto",
            "--augment",
            "1",
            "--eval-steps",
            "2",
            "--early-stopping-patience",
            "2",
            "--dropout",
            "0.2",
            "--label-smoothing",
            "0.1",
            "--scheduler",
            "cosine",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--precision",
            "fp32",
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_documents"] == 2 and metrics["test_windows"] >= 8  # 10% of 24 documents, 4 windows each
    assert metrics["epoch"] < 1  # the validation accuracy never improved: early stopping ended the epoch
    assert json.loads((out / "config.json").read_text())["hidden_dropout_prob"] == 0.2
    logged = caplog.text
    assert (
        "sliding windows" in logged
        and "class weights: neg=1, pos=1" in logged
        and "augmentation: 20 training examples -> 40" in logged
    )


def test_causal_lm_with_gradual_unfreezing_and_layer_lr_decay(tiny_llama, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small text about nothing much" for i in range(300)))
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
            "32",
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--precision",
            "fp32",
            "--gradual-unfreeze",
            "2",
            "--layer-lr-decay",
            "0.8",
            "--max-train-samples",
            "24",
        ],
    )
    logged = caplog.text
    assert "step 2, block 1 now trains" in logged and "step 4, block 0 now trains" in logged
    assert json.loads((out / "metrics.json").read_text())["test_perplexity"] > 0
