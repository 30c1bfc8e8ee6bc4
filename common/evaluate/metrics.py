"""`compute_metrics` functions for Trainer, built on scikit-learn (``evaluate.load`` needs the hub)."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from common.errors import UserError


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def classification_scores(labels, probabilities, label_names: list[str] | None = None) -> dict:
    """Accuracy; precision/recall/F1 macro (every class counts the same) and weighted (by support); Matthews
    correlation; ROC-AUC for two classes; with label_names also P/R/F1/support per class. No micro averages:
    with one label per example, micro precision, recall and F1 all equal the accuracy."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if not np.isfinite(probabilities).all():  # weights gone NaN in a last step, after the last logged loss
        raise UserError(
            "the trained model's outputs are not finite numbers (NaN or inf); lower --lr, or try --precision fp32"
        )
    predictions = probabilities.argmax(-1)
    scores = {"accuracy": float(accuracy_score(labels, predictions))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predictions, average=average, zero_division=0
        )
        scores.update(
            {f"{average}_f1": float(f1), f"{average}_precision": float(precision), f"{average}_recall": float(recall)}
        )
    scores["mcc"] = float(matthews_corrcoef(labels, predictions))
    if probabilities.shape[-1] == 2 and len(np.unique(labels)) == 2:  # AUC needs both classes present
        scores["roc_auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
    if label_names:
        per_class = precision_recall_fscore_support(
            labels, predictions, labels=list(range(len(label_names))), zero_division=0
        )
        for name, precision, recall, f1, support in zip(label_names, *per_class):
            scores.update(
                {
                    f"{name}_precision": float(precision),
                    f"{name}_recall": float(recall),
                    f"{name}_f1": float(f1),
                    f"{name}_support": int(support),
                }
            )
    return scores


def confusion(labels, predictions, n_classes: int) -> list[list[int]]:
    """Rows: true class, columns: predicted class, in label-id order."""
    return confusion_matrix(labels, predictions, labels=list(range(n_classes))).tolist()


def classification_metrics(eval_pred) -> dict:
    """Trainer's compute_metrics: classification_scores() of the softmax of the logits."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    return classification_scores(labels, softmax(logits))


def next_token_predictions(logits, labels):
    """`preprocess_logits_for_metrics` hook: keep, per block, the argmax id at each position and the mean token
    loss (what common.evaluate.causal_lm ranks the hardest passages by), never the full vocabulary logits.

    Storing [examples, tokens, vocab] floats for a whole eval set would take gigabytes (49k vocab).
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    targets = labels[:, 1:]  # the prediction at t is scored against token t+1
    mask = targets != -100
    block_loss = torch.stack(
        [  # a block at a time: a float copy of one block's logits, not the batch's
            torch.nn.functional.cross_entropy(row[:-1].float(), target.clamp(min=0), reduction="none")[keep].mean()
            for row, target, keep in zip(logits, targets, mask)
        ]
    )
    return logits.argmax(dim=-1), block_loss


def causal_lm_metrics(eval_pred) -> dict:
    """Next-token accuracy over real (non -100) label positions; perplexity comes from eval_loss."""
    predictions = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    predictions, labels = np.asarray(predictions), np.asarray(eval_pred.label_ids)
    predictions, labels = predictions[:, :-1], labels[:, 1:]  # the prediction at t is scored against token t+1
    mask = labels != -100
    return {"next_token_accuracy": float((predictions[mask] == labels[mask]).mean())}


def add_perplexity(metrics: dict, prefix: str) -> dict:
    """Perplexity = exp(mean token cross-entropy), added beside `{prefix}_loss`."""
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        metrics[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
    return metrics
