"""Each embedded real model trains briefly through its recipe, and the metric moves the right way.

Minutes, not seconds: marked slow (`make test-fast` skips them). Budgets are small on purpose; the
quality bars of the full default runs are in the README.
"""

import json

import pytest

from common.run import from_argv
from recipes import bert_classification, causal_lm, chat_sft, gpt2_sentiment

pytestmark = pytest.mark.slow


def test_smollm2_sentiment_learns_rotten_tomatoes(tmp_path):
    out = tmp_path / "out"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--max-train-samples",
            "640",
            "--max-eval-samples",
            "64",
            "--max-test-samples",
            "320",
            "--output-dir",
            str(out),
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.65  # chance is 0.58 (the fresh share); 40 steps reach ~0.74


def test_minilm_classification_learns_rotten_tomatoes(tmp_path):
    out = tmp_path / "out"
    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--epochs",
            "1",
            "--max-train-samples",
            "2000",
            "--max-eval-samples",
            "64",
            "--max-test-samples",
            "400",
            "--output-dir",
            str(out),
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.68


def test_smollm2_causal_lm_lowers_shakespeare_perplexity(tmp_path):
    out = tmp_path / "out"
    from_argv(
        causal_lm.main,
        causal_lm.DEFAULTS,
        [
            "--block-size",
            "128",
            "--max-train-samples",
            "32",
            "--max-eval-samples",
            "8",
            "--max-test-samples",
            "16",
            "--batch-size",
            "4",
            "--max-new-tokens",
            "10",
            "--output-dir",
            str(out),
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_perplexity"] < 0.9 * metrics["test_perplexity_before"]


def test_smollm2_learns_to_reply_like_the_chatterbot_corpus_and_to_stop(tmp_path):
    out = tmp_path / "out"
    # 20 test prompts: replying to them before and after training was most of this test's time at 40
    words = ["--max-train-samples", "320", "--max-eval-samples", "16", "--max-test-samples", "20", "--epochs", "1"]
    words += ["--lr", "1e-4"]
    from_argv(chat_sft.main, chat_sft.DEFAULTS, [*words, "--max-new-tokens", "64", "--output-dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_loss"] < metrics["test_loss_before"] - 0.3  # 2.4 -> ~1.8 in 20 steps
    # the Instruct model rambles past 64 tokens on about half the prompts; 20 steps teach it the corpus's length
    assert metrics["test_stopped"] >= 0.9 and metrics["test_stopped"] > metrics["test_stopped_before"]
