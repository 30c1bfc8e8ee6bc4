"""The Markdown pages a run writes: report.md of one run, of k-fold, of a search (the model card: card.py)."""

from __future__ import annotations

import json
import time

import torch

from common.config import RunConfig
from common.evaluate import CausalLMEvaluation, ClassificationEvaluation
from common.report.console import format_value
from common.report.parts import ReportParts
from common.runtime import command, hardware, world_size

SPLIT_ORDER = ("train", "validation", "test")


# ---------------------------------------------------------------- report.md of one run


def run_report(config: RunConfig, metrics: dict, history: list, parts: ReportParts) -> str:
    """report.md, the page a person reads first: command, data, doubts, metrics, curves, the task's own sections
    (`parts`, made by the run's task from its evaluation), timing, configuration."""
    import transformers

    validation = next((h for h in reversed(history or []) if "eval_loss" in h), {})
    skip = ("_runtime", "_per_second", "_support", "_preparation_time")
    names = [k[len("test_") :] for k in metrics if k.startswith("test_") and not k.endswith(skip)]
    names += [
        k[len("eval_") :] for k in validation if k.startswith("eval_") and not k.endswith(skip) and k[5:] not in names
    ]
    names = [n for n in names if not n.startswith(parts.shown_elsewhere)]  # in a section of their own (per class)
    rows = [
        f"| {n} | {format_value(validation.get('eval_' + n, ''))} | {format_value(metrics.get('test_' + n, ''))} |"
        for n in names
    ]
    runtime = metrics.get("train_runtime")
    timing = (
        f"Training took {runtime:,.0f} s ({metrics.get('train_samples_per_second', 0):.1f} examples/s) on {hardware()}"
        if runtime is not None
        else f"Trained on {hardware()}"
    )
    return "\n".join(
        [
            f"# Run report: {config.output.output_dir}",
            "",
            f"`{config.model.model}` fine-tuned on `{config.data.source}`, {time.strftime('%Y-%m-%d %H:%M')}.",
            "",
            "```bash",
            command(),
            "```",
            "",
            parts.data,
            *caveats_section(parts.caveats),
            "## Metrics",
            "",
            "| metric | validation (last evaluation) | test |",
            "|---|---|---|",
            *rows,
            *parts.under_metrics,
            "",
            "## Training",
            "",
            "![loss and validation metric over steps](training_curves.png)",
            "",
            f"{timing}, {world_size()} process(es); torch {torch.__version__}, transformers {transformers.__version__}.",
            "Every logged step is in `log_history.json`.",
            "",
            *parts.sections,
            "",
            "## Configuration",
            "",
            "Every flag of the run (`--config run_config.json` repeats it):",
            "",
            "```json",
            json.dumps(config.flat(), indent=1, default=str),
            "```",
            "",
        ]
    )


def caveats_section(caveats: list[str]) -> list[str]:
    """Above the metrics, where nobody reads past them: what should make the reader doubt them."""
    if not caveats:
        return []
    return ["## Read this before the metrics", "", *[f"- **{caveat}**" for caveat in caveats], ""]


def classification_data(evaluation: ClassificationEvaluation) -> str:
    names = evaluation.label_names
    lines = ["## Data", "", "| split | examples | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for split, counts in sorted(evaluation.class_counts.items(), key=lambda item: SPLIT_ORDER.index(item[0])):
        total = sum(counts)
        lines.append(f"| {split} | {total} | " + " | ".join(f"{c} ({c / max(total, 1):.0%})" for c in counts) + " |")
    return "\n".join(lines) + "\n"


def per_class_section(evaluation: ClassificationEvaluation) -> str:
    names, matrix = evaluation.label_names, evaluation.matrix
    rows = [
        f"| {r.label} | {r.precision:.4f} | {r.recall:.4f} | {r.f1:.4f} | {r.support} | {r.most_often_mistaken_for} |"
        for r in evaluation.per_class.itertuples()
    ]
    header = "| true \\ predicted | " + " | ".join(names) + " |"
    grid = [f"| **{name}** | " + " | ".join(str(c) for c in matrix[i]) + " |" for i, name in enumerate(names)]
    return "\n".join(
        [
            "## Per class (test)",
            "",
            "| label | precision | recall | F1 | support | most often mistaken for |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Confusion matrix (rows: true label):",
            "",
            header,
            "|---" * (len(names) + 1) + "|",
            *grid,
            "",
            "![confusion matrix](confusion_matrix.png)",
            "",
        ]
    )


def errors_section(evaluation: ClassificationEvaluation, shown: int = 10) -> str:
    errors, total = evaluation.errors, sum(evaluation.class_counts["test"])
    lines = [
        f"## The most confident errors ({len(errors)} of {total} test examples wrong; all in [errors.csv](errors.csv))",
        "",
        "| text | true | predicted | probability |",
        "|---|---|---|---|",
    ]
    for row in errors.head(shown).to_dict("records"):  # records: any column name works, not only identifiers
        text = " / ".join(str(row[c]) for c in evaluation.text_columns).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {text[:160]}{'...' if len(text) > 160 else ''} | {row['true_label']} | {row['predicted_label']} | "
            f"{row['probability']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def explanations_section(evaluation: ClassificationEvaluation) -> str:
    return (
        f"## Explanations\n\nToken attributions (integrated gradients) for {len(evaluation.attributions)} test "
        f"examples, the errors first: [explain.html](explain.html).\n"
    )


def corpus_data(evaluation: CausalLMEvaluation) -> str:
    rows = [f"| {name} | {n} | {n * evaluation.block_size:,} |" for name, n in evaluation.split_blocks.items()]
    return "\n".join(["## Data", "", "| split | blocks | tokens |", "|---|---|---|", *rows, ""])


def continuations_section(evaluation: CausalLMEvaluation) -> str:
    e = evaluation
    lines = [
        f"## Continuations of {len(e.continuations)} test passages",
        "",
        f"Greedy {e.new_tokens} tokens after the first {e.prompt_tokens} tokens of a test block, scored against the "
        f"text that follows: BLEU {e.bleu:.2f}, chrF {e.chrf:.2f} (sacrebleu). All in "
        f"[continuations.csv](continuations.csv).",
        "",
        f"## The hardest test passages (highest loss; all {len(e.passages)} in [hardest_passages.csv](hardest_passages.csv))",
        "",
        "| block | loss | perplexity | start of the passage |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.block} | {r.loss:.3f} | {r.perplexity:.1f} | {' '.join(r.text.split())[:120].replace('|', '/')} |"
        for r in e.passages.itertuples()
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- several runs


def kfold_report(summary: dict, config: RunConfig) -> str:
    k = summary["k"]
    header = "| metric | " + " | ".join(f"[fold {i}](fold-{i}/report.md)" for i in range(1, k + 1)) + " | mean +- std |"
    lines = [
        f"# {k}-fold cross-validation: {config.output.output_dir}",
        "",
        f"`{config.model.model}` on {summary['rows']} labelled rows of `{config.data.source}`, "
        f"split into {k} stratified folds (seed {config.training.seed}). Each fold's model trains on the other "
        f"{k - 1} folds and is tested on its own; each has its full report in `fold-N/`.",
        "",
        "```bash",
        command(),
        "```",
        "",
        header,
        "|---" * (k + 2) + "|",
    ]
    for name in summary["mean"]:
        values = " | ".join(format_value(fold[name]) for fold in summary["folds"])
        lines.append(
            f"| {name[len('test_') :]} | {values} | {summary['mean'][name]:.4f} +- {summary['std'][name]:.4f} |"
        )
    return "\n".join(lines) + "\n"


def search_report(summary: dict, space: dict, config: RunConfig) -> str:
    params = list(space)
    metric = summary["metric"]
    lines = [
        f"# Hyperparameter search: {config.output.output_dir}",
        "",
        f"{summary['search']} search over {', '.join(params)}: {len(summary['trials'])} trials of "
        f"`{config.model.model}`, each scored by {metric} ({summary['direction']}). The test split was not used "
        f"to choose. Best: trial {summary['best']['trial']}, {metric} {summary['best']['value']:.4f}; rerun it with "
        f"`--config best_config.yaml`.",
        "",
        "```bash",
        command(),
        "```",
        "",
        "| trial | " + " | ".join(params) + f" | {metric} |",
        "|---" * (len(params) + 2) + "|",
    ]
    for row in summary["trials"]:
        mark = " **best**" if row["trial"] == summary["best"]["trial"] else ""
        cells = " | ".join(format_value(row.get(p)) for p in params)
        lines.append(f"| {row['trial']}{mark} | {cells} | {format_value(row[metric])} |")
    return "\n".join(lines) + "\n"
