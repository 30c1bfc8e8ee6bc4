import math

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from common import metrics


def test_classification_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3))
    labels = rng.integers(0, 3, size=50)
    result = metrics.classification_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    predictions = logits.argmax(-1)
    assert math.isclose(result["accuracy"], accuracy_score(labels, predictions))
    assert math.isclose(result["macro_f1"], f1_score(labels, predictions, average="macro"))


def test_causal_lm_metrics_score_prediction_t_against_token_t_plus_1():
    labels = np.array([[5, 6, 7, -100]])
    predictions = np.array([[6, 0, 9, 9]])  # position 0 predicts 6 (right), 1 predicts 0 (wrong, 7), 2 -> -100 skipped
    result = metrics.causal_lm_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    assert result["next_token_accuracy"] == 0.5


def test_next_token_predictions_keep_ids_not_logits():
    logits = torch.randn(2, 5, 1000)
    kept = metrics.next_token_predictions(logits, None)
    assert kept.shape == (2, 5) and torch.equal(kept, logits.argmax(-1))


def test_perplexity_is_exp_loss():
    out = metrics.add_perplexity({"test_loss": 2.0}, "test")
    assert math.isclose(out["test_perplexity"], math.exp(2.0))
