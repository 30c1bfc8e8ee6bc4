"""Each recipe's main(config) runs from Python with no argv, as in a notebook, and returns its metrics."""

import json

from common.config import ClassificationTechniques
from recipes import bert_classification, causal_lm, gpt2_sentiment

FAST = dict(epochs=1.0, batch_size=4, precision="fp32")


def test_classifiers_run_from_a_config(tiny_bert, tiny_gpt2, reviews_csv, tmp_path):
    for recipe, model in ((bert_classification, tiny_bert), (gpt2_sentiment, tiny_gpt2)):
        out = tmp_path / recipe.__name__.split(".")[-1]
        config = recipe.DEFAULTS.derive(
            model=str(model),
            train_file=str(reviews_csv),
            output_dir=str(out),
            max_length=16,
            freeze_layers=1,
            max_train_samples=None,
            **FAST,
        )
        metrics = recipe.main(config)
        assert 0 <= metrics["test_accuracy"] <= 1
        assert json.loads((out / "metrics.json").read_text()) == metrics
        assert json.loads((out / "run_config.json").read_text())["task"] == "classification"


def test_a_group_can_be_replaced_whole(tiny_bert, reviews_csv, tmp_path):
    config = bert_classification.DEFAULTS.derive(
        model=str(tiny_bert), train_file=str(reviews_csv), output_dir=str(tmp_path / "focal"), max_length=16, **FAST
    )
    config = config.__class__(**{**config.__dict__, "techniques": ClassificationTechniques(loss="focal")})
    metrics = bert_classification.main(config)
    assert json.loads((tmp_path / "focal" / "run_config.json").read_text())["loss"] == "focal"
    assert metrics["test_loss"] > 0


def test_causal_lm_runs_from_a_config(tiny_llama, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small corpus" for i in range(200)))
    config = causal_lm.DEFAULTS.derive(
        model=str(tiny_llama),
        train_file=str(corpus),
        output_dir=str(tmp_path / "lm"),
        block_size=32,
        max_train_samples=8,
        prompt=None,
        **FAST,
    )
    metrics = causal_lm.main(config)
    assert metrics["test_perplexity"] > 1 and "test_perplexity_before" in metrics
