"""What the user sees at the end of a run: a small metrics table, a one-line summary, the model card."""

from __future__ import annotations

import math
import platform
import shlex
import sys

import torch


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


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def model_card(config: dict, metrics: dict) -> str:
    """README.md for an output folder: what was trained on what, how to load it, the test metrics, the command."""
    data = config.get("train_file") or config.get("dataset") or "?"
    task = "text-generation" if "block_size" in config else "text-classification"
    adapter = bool(config.get("lora_r")) and not config.get("merge_lora")
    load = ("from common import lora\nmodel = lora.load(\"OUTPUT_DIR\")  # LoRA adapter on " + str(config.get("model"))
            if adapter else f'from transformers import pipeline\npipe = pipeline("{task}", model="OUTPUT_DIR")')
    rows = [f"| {k} | {format_value(v)} |" for k, v in metrics.items()
            if k.startswith("test_") and not k.endswith(("_runtime", "_per_second"))]
    return "\n".join([
        f"# {config.get('output_dir', 'model')}", "",
        f"Fine-tuned from `{config.get('model')}` on `{data}` with lm-recipes ({task}).", "",
        "```python", load, "```", "",
        "| test metric | value |", "|---|---|", *rows, "",
        "Command:", "", "```bash", "python " + " ".join(shlex.quote(a) for a in sys.argv), "```", "",
        f"Trained on {hardware()}. Every flag of the run is in `run_config.json`; "
        "`--config run_config.json` repeats it. Loss and metrics over steps: `log_history.json`.", ""])
