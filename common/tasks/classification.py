"""Classification: a label for each text (or pair of texts), by a decoder or an encoder with a new head.

Recipes: recipes/gpt2_sentiment.py (a decoder LM) and recipes/bert_classification.py (an encoder). Their building
blocks: common.data.tables and tokens (labelled splits, token datasets), common.model.load_classifier,
common.train.losses (--loss, --class-weights), common.evaluate.classification (the test split looked at closely).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, Field

from common.config import (
    ClassificationData,
    ClassificationOutput,
    ClassificationRuns,
    ClassificationTechniques,
    ModelConfig,
    RunConfig,
    TrainingConfig,
)
from common.config.fields import require
from common.tasks.base import Refusal, Route, Task, Text, calls


@dataclass(frozen=True)
class ClassificationConfig(RunConfig):
    task: ClassVar[str] = "classification"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: ClassificationData = dataclasses.field(default_factory=ClassificationData)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    techniques: ClassificationTechniques = dataclasses.field(default_factory=ClassificationTechniques)
    output: ClassificationOutput = dataclasses.field(default_factory=ClassificationOutput)
    runs: ClassificationRuns = dataclasses.field(default_factory=ClassificationRuns)

    def check(self) -> None:
        super().check()
        require(
            not (self.runs.kfold and self.training.early_stopping_patience),
            "--kfold tests each fold on its held-out rows, which early stopping would also choose the model on; "
            "drop --early-stopping-patience",
        )


# ---------------------------------------------------------------- a saved classifier answering


def labels(run) -> list[str]:
    """The label names a saved classifier predicts, in the order of its outputs."""
    return [run.config.id2label[i] for i in range(run.config.num_labels)]


def classify(run, texts: list, progress: bool = False) -> list[dict]:
    """For each text (or (text, text) pair): the label, its probability and every class's probability."""
    import torch

    names = labels(run)
    run.tokenizer.padding_side = "right"
    results: list[dict | None] = [None] * len(texts)
    with torch.inference_mode():
        for positions, batch in run.batches(texts, progress):
            pairs = [list(t) if isinstance(t, (tuple, list)) else [t] for t in batch]
            columns = list(zip(*pairs))
            inputs = run.tokenizer(
                *[list(c) for c in columns],
                truncation=True,
                max_length=run.max_length,
                padding=True,
                return_tensors="pt",
            ).to(run.device)
            probabilities = run.model(**inputs).logits.float().softmax(-1).cpu()
            for position, row in zip(positions, probabilities):
                best = int(row.argmax())
                results[position] = {
                    "label": names[best],
                    "probability": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(names, row)},
                }
    return results


class PredictRequest(BaseModel):
    texts: list[Text | list[Text]] = Field(min_length=1)


def answer_predict(run, request: PredictRequest, max_batch: int) -> dict:
    if len(request.texts) > max_batch:
        raise Refusal(f"{len(request.texts)} texts in one request; send at most {max_batch}")
    width = len(TASK.input_columns(run.run_config))
    texts = [tuple(t) if isinstance(t, list) else t for t in request.texts]
    if any((len(t) if isinstance(t, tuple) else 1) != width for t in texts):
        shape = "a string" if width == 1 else f"a list of {width} strings"
        raise Refusal(f"this model reads {width} text(s) per example: each item of texts must be {shape}")
    return {"predictions": classify(run, texts)}


# ---------------------------------------------------------------- make new-recipe

SMOKE_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a few rows
with the columns that the recipe's DEFAULTS name."""

import json

import pandas as pd

from common.run import from_argv
from recipes import {name}


def test_{name}_trains_evaluates_and_saves(tiny_{model}, tmp_path):
    data = {name}.DEFAULTS.data
    rows = {{column: [f"a joy from start to finish {{i}}" for i in range(12)] + [f"a tedious mess {{i}}" for i in range(12)]
            for column in data.text_column}}
    rows[data.label_column] = ["pos"] * 12 + ["neg"] * 12
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_{model}), "--train-file", str(tmp_path / "rows.csv"),
                                             "--output-dir", str(out), "--epochs", "1", "--batch-size", "4",
                                             "--precision", "fp32", "--freeze-layers", "1"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    assert json.loads((out / "config.json").read_text())["id2label"] == {{"0": "neg", "1": "pos"}}
'''


# ---------------------------------------------------------------- the task


class Classification(Task):
    name = "classification"
    config = ClassificationConfig
    pipeline_tag = "text-classification"
    model_class = "AutoModelForSequenceClassification"
    main_metrics = ("accuracy", "macro_f1", "mcc", "roc_auc", "loss")
    curve_metric = "accuracy"
    does = "classifies text"
    routes = (Route("/predict", PredictRequest, answer_predict, '{"texts": [...]}'),)
    recipe_columns = {"TEXT": "text_column", "LABEL": "label_column"}

    def report(self, evaluation):
        from common.evaluate.baseline import baseline_table, card_line
        from common.report import ReportParts, markdown, plots
        from common.report.html import explain_html

        low, high = evaluation.accuracy_interval
        tested = sum(evaluation.class_counts["test"])
        files = {
            "errors.csv": evaluation.errors.to_csv(index=False),
            "per_class.csv": evaluation.per_class.to_csv(index=False),
            "confusion_matrix.png": plots.confusion_matrix(evaluation.matrix, evaluation.label_names),
        }
        sections = [markdown.per_class_section(evaluation), markdown.errors_section(evaluation)]
        if evaluation.attributions:
            files["explain.html"] = explain_html(evaluation.attributions)
            sections.append(markdown.explanations_section(evaluation))
        return ReportParts(
            data=markdown.classification_data(evaluation),
            caveats=evaluation.caveats,
            under_metrics=[
                "",
                f"The test accuracy's 95% interval: {low:.3f}-{high:.3f} ({tested} examples; Wilson score interval).",
                *baseline_table(evaluation.metrics),
            ],
            sections=sections,
            shown_elsewhere=(*(f"{label}_" for label in evaluation.label_names), "majority_", "tfidf_"),
            files=files,
            test={**evaluation.scores, "confusion_matrix": evaluation.matrix, "labels": evaluation.label_names},
            card_about=f" (labels: {', '.join(map(str, evaluation.label_names))})",
            card_every=", per class and over training,",
            card_lines=[
                f"Accuracy 95% interval: {low:.3f}-{high:.3f} ({tested} test examples).{card_line(evaluation.metrics)}",
                "",
            ],
        )

    def load_snippet(self, where: str) -> str:
        return (
            f'from transformers import pipeline\n\nclassify = pipeline("text-classification", model="{where}")\n'
            'print(classify("Replace this with a text to classify."))'
        )

    def recognizes(self, architecture: str, adapter_task_type: str | None) -> bool:
        if adapter_task_type is not None:
            return adapter_task_type == "SEQ_CLS"
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

        known = set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values())
        return architecture in known or architecture.endswith("ForSequenceClassification")

    def describe(self, run) -> dict:
        return {"labels": labels(run)}

    def predict(self, run, frame, columns, **_):
        texts = frame[columns].astype(str).values.tolist()
        results = classify(run, [tuple(t) if len(t) > 1 else t[0] for t in texts], progress=True)
        frame["label"] = [r["label"] for r in results]
        frame["probability"] = [r["probability"] for r in results]
        for name in labels(run):
            frame[f"probability_{name}"] = [r["probabilities"][name] for r in results]
        return frame

    def recipe_settings(self, columns: dict[str, list[str]]) -> dict:
        settings = {"text_column": columns["TEXT"]} if "TEXT" in columns else {}  # one column, or two for pairs
        return {**settings, **({"label_column": columns["LABEL"]} if "LABEL" in columns else {})}

    def smoke_test(self, name: str, source: str, recipe: str) -> str:
        decoder = calls(recipe, "pad_with_end_of_text")  # the decoder classifier: its smoke test uses a tiny GPT-2
        return SMOKE_TEST.replace("{model}", "gpt2" if decoder else "bert").format(name=name, source=source)


TASK = Classification()
