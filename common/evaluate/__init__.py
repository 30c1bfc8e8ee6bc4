"""Evaluation: metrics for Trainer, and the test split looked at closely. Returns data; common.report renders it."""

from common.evaluate.causal_lm import CausalLMEvaluation, evaluate_causal_lm, evaluate_split
from common.evaluate.classification import ClassificationEvaluation, evaluate_classifier
from common.evaluate.metrics import causal_lm_metrics, classification_metrics, next_token_predictions

__all__ = [
    "CausalLMEvaluation",
    "ClassificationEvaluation",
    "causal_lm_metrics",
    "classification_metrics",
    "evaluate_causal_lm",
    "evaluate_classifier",
    "evaluate_split",
    "next_token_predictions",
]
