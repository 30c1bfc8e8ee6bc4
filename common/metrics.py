"""`compute_metrics` functions for Trainer, built on scikit-learn (``evaluate.load`` needs the hub)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def classification_metrics(eval_pred) -> dict:
    """Accuracy and macro precision/recall/F1 (macro: every class counts the same, whatever its size)."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predictions = np.asarray(logits).argmax(-1)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
    }


def next_token_predictions(logits, labels):
    """`preprocess_logits_for_metrics` hook: keep the argmax id per position, never the full vocabulary logits.

    Storing [examples, tokens, vocab] floats for a whole eval set would take gigabytes (49k vocab).
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def causal_lm_metrics(eval_pred) -> dict:
    """Next-token accuracy over real (non -100) label positions; perplexity comes from eval_loss."""
    predictions, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
    predictions, labels = predictions[:, :-1], labels[:, 1:]  # the prediction at t is scored against token t+1
    mask = labels != -100
    return {"next_token_accuracy": float((predictions[mask] == labels[mask]).mean())}


def add_perplexity(metrics: dict, prefix: str) -> dict:
    """Perplexity = exp(mean token cross-entropy), added beside `{prefix}_loss`."""
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        metrics[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
    return metrics

