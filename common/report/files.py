"""The files of a finished run beside its model: the evaluation's tables, pictures and pages, and report.md."""

from __future__ import annotations

import json

from common.evaluate import CausalLMEvaluation, ClassificationEvaluation
from common.report import markdown, plots
from common.report.card import model_card
from common.report.html import explain_html


def run_files(config: dict, metrics: dict, history: list, evaluation=None) -> dict[str, str | bytes]:
    """name -> content: README.md (the model card) always; with an evaluation also its csv/png/html files,
    evaluation.json (validation and test, per class), training_curves.png and report.md."""
    files: dict[str, str | bytes] = {"README.md": model_card(config, metrics, evaluation)}
    if evaluation is None:
        return files
    test: dict = {}
    if isinstance(evaluation, ClassificationEvaluation):
        files["errors.csv"] = evaluation.errors.to_csv(index=False)
        files["per_class.csv"] = evaluation.per_class.to_csv(index=False)
        files["confusion_matrix.png"] = plots.confusion_matrix(evaluation.matrix, evaluation.label_names)
        if evaluation.attributions:
            files["explain.html"] = explain_html(evaluation.attributions)
        test = {**evaluation.scores, "confusion_matrix": evaluation.matrix, "labels": evaluation.label_names}
        metric = "accuracy"
    elif isinstance(evaluation, CausalLMEvaluation):
        files["hardest_passages.csv"] = evaluation.passages.to_csv(index=False)
        files["continuations.csv"] = evaluation.continuations.to_csv(index=False)
        test = {**evaluation.metrics, "block_losses": evaluation.block_losses}
        metric = "next_token_accuracy"
    validation = next((h for h in reversed(history) if "eval_loss" in h), {})
    files["evaluation.json"] = json.dumps({"validation": validation, "test": test}, indent=1, default=float) + "\n"
    files["training_curves.png"] = plots.training_curves(history, metric)
    files["report.md"] = markdown.run_report(config, metrics, history, evaluation)
    return files
