"""What the user sees in the terminal at the end of a run: an aligned metrics table."""

from __future__ import annotations

import math


def format_value(value) -> str:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def metrics_table(title: str, metrics: dict, keys: list[str] | None = None) -> str:
    """Aligned `name  value` lines under a title; runtime/speed entries are left out unless asked for."""
    keys = keys or [k for k in metrics if not k.endswith(("_runtime", "_per_second", "_steps_per_second"))]
    width = max(len(k) for k in keys)
    lines = [title] + [f"  {k.ljust(width)}  {format_value(metrics[k])}" for k in keys if k in metrics]
    return "\n".join(lines)


def print_metrics(title: str, metrics: dict, keys: list[str] | None = None) -> None:
    print("\n" + metrics_table(title, metrics, keys), flush=True)
