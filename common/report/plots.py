"""PNG pictures for report.md (matplotlib, drawn off-screen): loss and metric curves, the confusion matrix."""

from __future__ import annotations

import io


def _figure(*size):
    import matplotlib

    matplotlib.use("Agg")  # no display: draw into memory
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=size)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def training_curves(history: list[dict], metric: str) -> bytes:
    """Training loss and validation loss over steps (left), the validation `metric` over steps (right)."""
    plt, figure = _figure(10, 3.6)
    loss, curve = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    validation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    scores = [(h["step"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]
    for axes, points, label, style in (
        (loss, train, "training loss", "-"),
        (loss, validation, "validation loss", "o-"),
        (curve, scores, f"validation {metric}", "o-"),
    ):
        if points:
            axes.plot(*zip(*points), style, label=label)
    for axes, title in ((loss, "loss"), (curve, metric)):
        axes.set_xlabel("step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    return _png(plt, figure)


def confusion_matrix(matrix: list[list[int]], label_names: list[str]) -> bytes:
    plt, figure = _figure(1.2 + 0.6 * len(label_names), 1 + 0.6 * len(label_names))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(matrix, cmap="Blues")
    ticks = range(len(label_names))
    axes.set_xticks(ticks, label_names, rotation=45, ha="right")
    axes.set_yticks(ticks, label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black")
    return _png(plt, figure)
