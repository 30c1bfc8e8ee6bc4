import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import EvalPrediction

from common.evaluate import metrics


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
    labels = torch.tensor([[1, 2, 3, 4, 5], [6, 7, -100, 8, 9]])
    kept, block_loss = metrics.next_token_predictions(logits, labels)
    assert kept.shape == (2, 5) and torch.equal(kept, logits.argmax(-1))
    # each block's mean loss of predicting token t+1 at t, over real label positions only (by hand for the second)
    log_p = logits.log_softmax(-1)
    by_hand = -(log_p[1, 0, 7] + log_p[1, 2, 8] + log_p[1, 3, 9]) / 3
    assert block_loss.shape == (2,) and torch.isclose(block_loss[1], by_hand, atol=1e-5)


def test_perplexity_is_exp_loss():
    out = metrics.add_perplexity({"test_loss": 2.0}, "test")
    assert math.isclose(out["test_perplexity"], math.exp(2.0))


def test_every_classification_score_equals_scikit_learn_on_a_hand_made_set():
    from sklearn.metrics import matthews_corrcoef, precision_score, recall_score, roc_auc_score

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    p_pos = np.array([0.1, 0.4, 0.6, 0.8, 0.7, 0.3, 0.9, 0.2, 0.55, 0.45])  # predictions: 0 0 1 1 1 0 1 0 1 0
    probabilities = np.stack([1 - p_pos, p_pos], axis=1)
    predictions = (p_pos > 0.5).astype(int)
    scores = metrics.classification_scores(labels, probabilities, ["neg", "pos"])
    assert scores["accuracy"] == 0.8
    assert not any(name.startswith("micro_") for name in scores)  # single-label: each would equal the accuracy
    assert math.isclose(scores["accuracy"], f1_score(labels, predictions, average="micro"))
    for average in ("macro", "weighted"):
        assert math.isclose(scores[f"{average}_f1"], f1_score(labels, predictions, average=average))
        assert math.isclose(scores[f"{average}_precision"], precision_score(labels, predictions, average=average))
        assert math.isclose(scores[f"{average}_recall"], recall_score(labels, predictions, average=average))
    assert math.isclose(scores["mcc"], matthews_corrcoef(labels, predictions))
    assert math.isclose(scores["roc_auc"], roc_auc_score(labels, p_pos)) and scores["roc_auc"] == pytest.approx(
        21 / 25
    )  # pairs ranked right, by hand
    # per class, by hand: pos has 4 of 5 predicted-pos right and finds 4 of 5 real pos
    assert (scores["pos_precision"], scores["pos_recall"], scores["pos_support"]) == (0.8, 0.8, 5)
    assert metrics.confusion(labels, predictions, 2) == [[4, 1], [1, 4]]


def test_three_classes_have_no_roc_auc_and_a_full_confusion_matrix():
    labels = np.array([0, 1, 2, 2, 1])
    probabilities = np.eye(3)[[0, 2, 2, 1, 1]]
    scores = metrics.classification_scores(labels, probabilities, ["a", "b", "c"])
    assert "roc_auc" not in scores and scores["accuracy"] == 0.6 and scores["c_support"] == 2
    matrix = metrics.confusion(labels, probabilities.argmax(-1), 3)
    assert matrix == [[1, 0, 0], [0, 1, 1], [0, 1, 1]] and sum(map(sum, matrix)) == len(labels)


def test_outputs_that_are_not_finite_are_one_line_not_a_scikit_learn_error():
    from common.errors import UserError

    # a model whose weights went NaN in the last steps (--lr far too high), after the last logged loss
    with pytest.raises(UserError, match="outputs are not finite numbers \\(NaN or inf\\); lower --lr"):
        metrics.classification_scores([0, 1], np.array([[np.nan, np.nan], [0.4, 0.6]]), ["neg", "pos"])


def test_best_metric_offers_exactly_what_a_classifiers_validation_reports():
    from common.config.groups import CLASSIFICATION_METRICS

    reported = metrics.classification_scores([0, 1, 1, 0], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]]))
    assert set(CLASSIFICATION_METRICS) == {"loss", *reported}
