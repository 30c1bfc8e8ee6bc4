"""The files of a finished run beside its model: the evaluation's tables, pictures and pages, and report.md."""

from __future__ import annotations

import json

from common.config import RunConfig
from common.report import markdown, plots
from common.report.card import model_card
from common.report.parts import ReportParts


def run_files(config: RunConfig, metrics: dict, history: list, task, parts: ReportParts | None = None) -> dict:
    """name -> content (str or bytes): README.md (the model card) always; with the evaluation's `parts` (made by the
    run's `task`, a common.tasks.Task) also its files, evaluation.json (validation and test), training_curves.png
    and report.md."""
    files: dict[str, str | bytes] = {"README.md": model_card(config, metrics, task, parts)}
    if parts is None:
        return files
    files.update(parts.files)
    validation = next((h for h in reversed(history) if "eval_loss" in h), {})
    files["evaluation.json"] = (
        json.dumps({"validation": validation, "test": parts.test}, indent=1, default=float) + "\n"
    )
    files["training_curves.png"] = plots.training_curves(history, task.curve_metric)
    files["report.md"] = markdown.run_report(config, metrics, history, parts)
    return files
