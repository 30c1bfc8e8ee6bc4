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
    return _png(*curves_figure(history, metric))


def curves_figure(history: list[dict], metric: str):
    """(pyplot, figure) of training_curves. Both panels span the steps from 0, so that one evaluation is a point
    at the end of training, written out with its value (a lone dot on an axis of its own had read as a trend)."""
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
        if len(points) == 1 and style == "o-":
            step, value = points[0]
            axes.annotate(f"{value:.4g}", (step, value), textcoords="offset points", xytext=(-6, 6), ha="right")
    last = max((step for step, _ in train + validation + scores), default=0)
    for axes, title in ((loss, "loss"), (curve, metric)):
        axes.set_xlabel("step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if last:
            axes.set_xlim(0, last * 1.05)
        if axes.lines:
            axes.legend()
    return plt, figure


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
