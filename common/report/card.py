"""The model card (README.md of an output folder): a hub metadata block that huggingface_hub reads (pipeline tag,
base model, datasets, test results as a model-index), a load snippet that runs as written, the main test
metrics with their doubts, and how the model was trained."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from common.assets import PREFIX, hub_id
from common.config import DataConfig, RunConfig
from common.report.console import format_value
from common.report.parts import ReportParts
from common.runtime import command, hardware


def model_card(config: RunConfig, metrics: dict, task, parts: ReportParts | None = None) -> str:
    """README.md for an output folder (or the hub repo --push-to-hub uploads it to). `task`: the run's
    common.tasks.Task (its pipeline tag, main metrics and load snippet); `parts`: what its evaluation adds."""
    parts = parts or ReportParts()
    pipeline_tag = task.pipeline_tag
    model, techniques = config.model.model, config.techniques
    where = config.output.push_to_hub or config.output.output_dir or "."  # the snippet loads from here
    name = Path(where).name or "model"
    adapter = bool(techniques.lora_r) and not techniques.merge_lora
    base, data = base_model(model), training_data(config.data)
    shown = [m for m in task.main_metrics if f"test_{m}" in metrics]
    results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=data,
            dataset_name=data,
            dataset_split="test",
            metric_type=metric,
            metric_value=round(float(metrics[f"test_{metric}"]), 4),
        )
        for metric in shown
    ]
    metadata = ModelCardData(
        model_name=name,
        base_model=base,
        datasets=[data] if hub_dataset(config.data) else None,
        library_name="peft" if adapter else "transformers",
        pipeline_tag=pipeline_tag,
        tags=["lm-recipes", pipeline_tag, *(["lora"] if techniques.lora_r else [])],
        eval_results=results or None,
    )
    snippet, training = task.load_snippet(where), config.training
    if adapter:
        snippet = f'from common.model import lora  # lm-recipes: the adapter, on {model}\nmodel = lora.load("{where}")'
    body = [
        f"# {name}",
        "",
        f"`{model}` fine-tuned for {pipeline_tag.replace('-', ' ')} on `{data}` with lm-recipes{parts.card_about}.",
        "",
        "## Use",
        "",
        "```python",
        snippet,
        "```",
        "",
        "## Test results",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {metric} | {format_value(metrics[f'test_{metric}'])} |" for metric in shown],
        "",
        *parts.card_lines,
        *[f"- **{caveat}**" for caveat in parts.caveats],
        *([""] if parts.caveats else []),
        f"Every metric{parts.card_every} is in `report.md`, `metrics.json` and `log_history.json`.",
        "",
        "## Training",
        "",
        f"{_epochs(training.epochs)}, learning rate {format_value(training.lr)}, batch {training.batch_size}, "
        f"seed {training.seed}; trained on {hardware()} with:",
        "",
        "```bash",
        command(),
        "```",
        "",
        "Every setting is in `run_config.json`; `--config run_config.json` repeats the run.",
        "",
    ]
    return str(ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(body)))


def base_model(model: str | None) -> str | None:
    """The hub id of the model trained from: an embedded model's original, a hub id as given; None for a folder."""
    if not model:
        return None
    if model.startswith(PREFIX):
        return hub_id(model)
    return None if Path(model).exists() else model


def hub_dataset(data: DataConfig) -> bool:
    return bool(data.dataset) and not data.train_file and not data.dataset.startswith(PREFIX)


def training_data(data: DataConfig) -> str:
    if data.train_file:
        return Path(data.train_file).name
    return str(data.dataset or "unknown")


def _epochs(epochs) -> str:
    """2 -> "2 epochs", 1 -> "1 epoch", 0.5 -> "0.5 epochs" (never "2.0000 epoch(s)")."""
    if not isinstance(epochs, (int, float)):
        return f"{epochs} epochs"
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")
