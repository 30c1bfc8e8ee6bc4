"""What the user sees at the end of a run: a small metrics table, a one-line summary, the model card."""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
import time

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
        "Command:", "", "```bash", command(), "```", "",
        f"Trained on {hardware()}. Every flag of the run is in `run_config.json`; "
        "`--config run_config.json` repeats it. Loss and metrics over steps: `log_history.json`.", ""])


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def run_report(config: dict, metrics: dict, history: list, sections: list[str], data: str = "",
               per_class_prefixes: tuple = ()) -> str:
    """report.md, the page a person reads first: command, data, metrics, curves, errors, timing, configuration."""
    import transformers

    from common.training import world_size

    validation = next((h for h in reversed(history or []) if "eval_loss" in h), {})
    skip = ("_runtime", "_per_second", "_support", "_preparation_time")
    names = [k[len("test_"):] for k in metrics if k.startswith("test_") and not k.endswith(skip)]
    names += [k[len("eval_"):] for k in validation if k.startswith("eval_") and not k.endswith(skip) and k[5:] not in names]
    names = [n for n in names if not n.startswith(per_class_prefixes)]  # those are in the per-class table
    rows = [f"| {n} | {format_value(validation.get('eval_' + n, ''))} | {format_value(metrics.get('test_' + n, ''))} |"
            for n in names]
    runtime = metrics.get("train_runtime")
    timing = (f"Training took {runtime:,.0f} s ({metrics.get('train_samples_per_second', 0):.1f} examples/s) on {hardware()}"
              if runtime is not None else f"Trained on {hardware()}")
    return "\n".join([
        f"# Run report: {config.get('output_dir')}", "",
        f"`{config.get('model')}` fine-tuned on `{config.get('train_file') or config.get('dataset')}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}.", "",
        "```bash", command(), "```", "", data,
        "## Metrics", "", "| metric | validation (last evaluation) | test |", "|---|---|---|", *rows, "",
        "## Training", "", "![loss and validation metric over steps](training_curves.png)", "",
        f"{timing}, {world_size()} process(es); torch {torch.__version__}, transformers {transformers.__version__}.",
        "Every logged step is in `log_history.json`.", "",
        *sections, "",
        "## Configuration", "", "Every flag of the run (`--config run_config.json` repeats it):", "",
        "```json", json.dumps(config, indent=1, default=str), "```", ""])
