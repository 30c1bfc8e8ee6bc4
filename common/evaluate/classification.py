"""A classifier's test split looked at closely: every metric, the confusion matrix, the errors ranked by the
model's confidence, per-class numbers and (explain > 0) token attributions. Returns data; common.report renders it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.evaluate.attributions import token_attributions
from common.evaluate.baseline import baseline_metrics, not_beaten
from common.evaluate.caveats import classification_caveats, matrix_interval
from common.evaluate.metrics import classification_scores, confusion, softmax

logger = logging.getLogger(__name__)


@dataclass
class ClassificationEvaluation:
    metrics: dict  # flat test_* metrics for metrics.json
    scores: dict  # classification_scores() with per-class entries
    label_names: list[str]
    text_columns: list[str]
    matrix: list[list[int]]  # rows: true label, columns: predicted
    errors: pd.DataFrame  # the wrong test examples with all their columns, most confident first
    per_class: pd.DataFrame  # precision, recall, F1, support, most often mistaken for
    class_counts: dict  # split -> examples per class, in label order
    attributions: list[dict] = field(default_factory=list)  # --explain: tokens and their scores per example
    caveats: list[str] = field(default_factory=list)  # common.evaluate.caveats: doubts about the numbers, in words
    accuracy_interval: tuple[float, float] = (0.0, 1.0)  # 95% Wilson interval of the test accuracy

    @property
    def shown(self) -> list[str]:
        """The metrics a run prints at its end: the main ones, then the baselines' accuracy beside them."""
        main = ["test_accuracy", "test_macro_f1", "test_mcc", "test_loss", "test_tfidf_accuracy"]
        return [name for name in [*main, "test_majority_accuracy"] if name in self.metrics]


def evaluate_classifier(
    trainer, dataset, splits: dict, label_names: list[str], text_columns: list[str], output=None, tokenizer=None
) -> ClassificationEvaluation:
    """Test metrics (every average, per class, MCC, ROC-AUC), the confusion matrix, the errors and per-class table;
    as `output` (a ClassificationOutput) asks: with explain N the attributions of the first N test examples, with
    baseline "tfidf" what the majority class and TF-IDF + logistic regression score on the same split
    (common.evaluate.baseline)."""
    explain, baseline = (output.explain, output.baseline) if output is not None else (0, "none")
    predicted = trainer.predict_in_order(dataset)  # sliding windows: one prediction per document
    logits = predicted.predictions[0] if isinstance(predicted.predictions, tuple) else predicted.predictions
    labels = predicted.label_ids
    counts = {"test_windows": len(dataset), "test_documents": len(labels)} if "document" in dataset.column_names else {}
    probabilities = softmax(logits)
    predictions = probabilities.argmax(-1)
    scores = classification_scores(labels, probabilities, label_names)
    metrics = {"test_loss": predicted.metrics["test_loss"], **counts, **{f"test_{k}": v for k, v in scores.items()}}
    metrics.update({k: v for k, v in predicted.metrics.items() if k.endswith(("_runtime", "_per_second"))})
    if baseline != "none":
        metrics.update(baseline_metrics(splits, text_columns, len(label_names), trainer.args.seed))
    matrix = confusion(labels, predictions, len(label_names))

    # every column of the user's test rows (ids, sources, ...), so that errors.csv can be joined back to their data
    frame = splits["test"].reset_index(drop=True)
    errors = frame.drop(columns="labels")
    ours = ["true_label", "predicted_label", "probability", "true_label_probability"]
    errors = errors.rename(columns={c: f"{c}_input" for c in ours if c in errors and c not in text_columns})
    errors["true_label"] = [label_names[i] for i in labels]
    errors["predicted_label"] = [label_names[i] for i in predictions]
    errors["probability"] = probabilities.max(-1)
    errors["true_label_probability"] = probabilities[np.arange(len(labels)), labels]
    errors = errors[predictions != labels].sort_values("probability", ascending=False, kind="stable")
    per_class = pd.DataFrame(
        {
            "label": label_names,
            "precision": [scores[f"{n}_precision"] for n in label_names],
            "recall": [scores[f"{n}_recall"] for n in label_names],
            "f1": [scores[f"{n}_f1"] for n in label_names],
            "support": [scores[f"{n}_support"] for n in label_names],
            "most_often_mistaken_for": [_most_confused(matrix, i, label_names) for i in range(len(label_names))],
        }
    )
    attributions = []
    if explain:  # the errors first, most confident first (as errors.csv), then the right predictions
        right = [i for i in range(len(frame)) if predictions[i] == labels[i]]
        chosen = [*errors.index, *right][:explain]
        attributions = [
            {
                **token_attributions(
                    trainer.model, tokenizer, tuple(frame.loc[i, c] for c in text_columns), trainer.args.device,
                    label_names,
                ),
                "true": label_names[labels[i]],
            }
            for i in chosen
        ]  # fmt: skip
    class_counts = {name: np.bincount(f["labels"], minlength=len(label_names)).tolist() for name, f in splits.items()}
    caveats = classification_caveats(
        class_counts, matrix, label_names, trainer.state.log_history, trainer.state.global_step
    ) + not_beaten(metrics)
    for caveat in caveats:
        logger.warning(caveat)
    return ClassificationEvaluation(
        metrics,
        scores,
        label_names,
        list(text_columns),
        matrix,
        errors,
        per_class,
        class_counts,
        attributions,
        caveats,
        matrix_interval(matrix),
    )


def _most_confused(matrix: list[list[int]], row: int, label_names: list[str]) -> str:
    counts = [(count, label_names[j]) for j, count in enumerate(matrix[row]) if j != row and count]
    return f"{max(counts)[1]} ({max(counts)[0]})" if counts else ""
