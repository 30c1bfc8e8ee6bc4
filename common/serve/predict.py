"""Predictions from a saved run: labels with probabilities (classifiers) or continuations (causal LMs).

  python -m common.serve.predict outputs/bert_classification --input reviews.csv --output predictions.csv
  python -m common.serve.predict outputs/causal_lm --input prompts.txt            # one prompt per line; jsonl to stdout
  echo "a joy from start to finish" | python -m common.serve.predict outputs/gpt2_sentiment

Input: .csv/.jsonl/.json/.parquet (the text column(s) of the run, or --text-column), .txt (one text per
line), or standard input (one per line). Output: .csv or .jsonl, or jsonl on standard output.
`Predictor` is what `common.serve` answers HTTP requests with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from common.config.cli import RecipeParser, positive_number
from common.config.fields import non_negative, valid_seed
from common.data import read_file
from common.errors import UserError, first_line
from common.model.load import check_config_file, weights_problem
from common.runtime import run_cli


def _task(config, adapter_file: Path, run_task: str | None) -> str | None:
    """ "classification" or "generation": from the run's own record, else from the architecture (GPT2LMHeadModel
    is a causal LM too, whatever its name), or for a LoRA adapter from peft's task type; None if neither."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    if run_task in ("classification", "causal_lm"):
        return "classification" if run_task == "classification" else "generation"
    if adapter_file.is_file():
        try:
            task_type = json.loads(adapter_file.read_text()).get("task_type")
        except ValueError:
            return None
        return "classification" if task_type == "SEQ_CLS" else "generation"
    architecture = (config.architectures or [""])[0]
    if architecture in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or architecture.endswith("ForCausalLM"):
        return "generation"
    classifiers = set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values())
    if architecture in classifiers or architecture.endswith("ForSequenceClassification"):
        return "classification"
    return None


class Predictor:
    """A saved output folder (plain model, merged LoRA or LoRA adapter) ready to classify or generate, batched."""

    def __init__(self, folder: str | Path, batch_size: int = 32, max_length: int | None = None):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise UserError(f"'{folder}' is not a saved run (no config.json); pass a recipe's --output-dir")
        check_config_file(str(folder), self.folder / "config.json")
        for weights in sorted(self.folder.glob("*.safetensors")):
            if problem := weights_problem(weights):
                raise UserError(f"the model in '{folder}' is damaged: {problem}; save or copy it again")
        run_config_file = self.folder / "run_config.json"
        try:
            self.run_config = json.loads(run_config_file.read_text()) if run_config_file.is_file() else {}
        except ValueError:
            self.run_config = {}  # only the text column and max length come from it; the defaults do
        config = AutoConfig.from_pretrained(self.folder)
        adapter_file = self.folder / "adapter_config.json"
        self.task = _task(config, adapter_file, self.run_config.get("task"))
        if self.task is None:
            raise UserError(
                f"'{folder}' holds a {(config.architectures or ['model of unknown kind'])[0]}; predict needs a "
                f"classifier or a causal LM saved by a recipe"
            )
        try:
            if adapter_file.is_file():
                from common.model import lora

                self.model = lora.load(self.folder, "classification" if self.task == "classification" else "causal_lm")
            else:
                model_class = AutoModelForCausalLM if self.task == "generation" else AutoModelForSequenceClassification
                self.model = model_class.from_pretrained(self.folder, use_safetensors=True)
        except (OSError, SafetensorError) as e:
            raise UserError(
                f"could not load the model in '{folder}' ({first_line(e)}); predict reads safetensors weights only"
            ) from None
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        positions = getattr(config.get_text_config(), "max_position_embeddings", None) or 512
        self.max_length = min(max_length or self.run_config.get("max_length") or positions, positions)
        self.labels = [config.id2label[i] for i in range(config.num_labels)] if self.task == "classification" else []
        columns = self.run_config.get("text_column") or ["text"]
        self.text_columns = [columns] if isinstance(columns, str) else columns  # two for a sentence-pair model

    def _batches(self, texts: list, progress: bool):
        """Batches of (positions, texts) in length order, so each batch pads little; callers restore the order."""
        order = sorted(range(len(texts)), key=lambda i: len(str(texts[i])))
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress, file=sys.stderr):
            positions = order[start : start + self.batch_size]
            yield positions, [texts[i] for i in positions]

    @torch.inference_mode()
    def classify(self, texts: list, progress: bool = False) -> list[dict]:
        """For each text (or (text, text) pair): the label, its probability and every class's probability."""
        self.tokenizer.padding_side = "right"
        results: list[dict | None] = [None] * len(texts)
        for positions, batch in self._batches(texts, progress):
            pairs = [list(t) if isinstance(t, (tuple, list)) else [t] for t in batch]
            columns = list(zip(*pairs))
            inputs = self.tokenizer(
                *[list(c) for c in columns],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            probabilities = self.model(**inputs).logits.float().softmax(-1).cpu()
            for position, row in zip(positions, probabilities):
                best = int(row.argmax())
                results[position] = {
                    "label": self.labels[best],
                    "probability": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(self.labels, row)},
                }
        return results

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 60,
        temperature: float = 0.0,
        seed: int = 42,
        progress: bool = False,
    ) -> list[str]:
        """Each prompt's continuation (the new text only): greedy with temperature 0, else seeded nucleus sampling."""
        from transformers import set_seed

        set_seed(seed)
        self.tokenizer.padding_side = "left"  # new tokens follow the prompt directly in every row of the batch
        sampling = (
            dict(do_sample=True, temperature=temperature, top_p=0.9) if temperature > 0 else dict(do_sample=False)
        )
        results: list[str | None] = [None] * len(prompts)
        for positions, batch in self._batches(prompts, progress):
            inputs = self.tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
            ).to(self.device)
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling
            )
            for position, row in zip(positions, output[:, inputs["input_ids"].shape[1] :]):
                results[position] = self.tokenizer.decode(row, skip_special_tokens=True)
        return results


def read_inputs(path: str | None, text_columns: list[str]) -> pd.DataFrame:
    """The rows to predict on: a table file, a .txt file (a text per line) or standard input (a text per line)."""
    if path is None or path == "-" or path.lower().endswith(".txt"):
        if len(text_columns) > 1:
            raise UserError(
                f"this model reads pairs of texts ({', '.join(text_columns)}); give a table file (csv, jsonl) "
                f"with both columns as --input"
            )
        if path and path != "-" and not Path(path).is_file():
            raise UserError(f"--input '{path}' does not exist; check the path")
        where = "standard input" if path in (None, "-") else f"--input '{path}'"
        try:
            raw = sys.stdin.buffer.read() if path in (None, "-") else Path(path).read_bytes()
            lines = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{where} is not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
        except OSError as e:
            raise UserError(f"{where} cannot be read ({e.strerror or e}); check the file") from None
        frame = pd.DataFrame({text_columns[0]: [line for line in lines.splitlines() if line.strip()]})
    else:
        frame = read_file(path, "--input", folders=False)
    missing = [c for c in text_columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"column '{missing[0]}' is not in the input (columns: {', '.join(map(str, frame.columns))}); "
            f"pass --text-column"
        )
    if frame.empty:
        raise UserError("the input has no texts to predict on")
    blank = frame[text_columns].isna().any(axis=1) | (
        frame[text_columns].astype(str).apply(lambda c: c.str.strip()) == ""
    ).any(axis=1)
    if blank.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(blank.to_numpy())[:5])
        raise UserError(
            f"{int(blank.sum())} row(s) of the input have no text (row {rows}{', ...' if blank.sum() > 5 else ''}); "
            f"fill them or remove them"
        )
    return frame


def write_outputs(frame: pd.DataFrame, path: str | None) -> None:
    """jsonl on standard output, or a .csv/.jsonl file written whole (via a temporary file) or not at all."""
    if path is None:
        frame.to_json(sys.stdout, orient="records", lines=True, force_ascii=False)
        return
    partial = Path(path).with_name(f".{Path(path).name}.partial")
    try:
        if path.endswith(".csv"):
            frame.to_csv(partial, index=False)
        else:
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def main(argv=None) -> None:
    parser = RecipeParser(
        prog="python -m common.serve.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a recipe's output folder")
    parser.add_argument("--input", help="csv/jsonl/json/parquet/txt file; standard input if left out")
    parser.add_argument("--output", help="where to write: .csv or .jsonl (default: jsonl on standard output)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--text-column", nargs="+", help="text column(s) of a table input (default: the run's)")
    parser.add_argument("--batch-size", type=positive_number(int), default=32, help="texts per forward pass")
    parser.add_argument(
        "--max-new-tokens", type=positive_number(int), default=60, help="generation: tokens to add per prompt"
    )
    parser.add_argument(
        "--temperature",
        type=positive_number(float, non_negative),
        default=0.0,
        help="generation: 0 is greedy, above 0 samples",
    )
    parser.add_argument(
        "--seed", type=positive_number(int, valid_seed), default=42, help="generation: seed for sampling"
    )
    args = parser.parse_args(argv)
    if args.output and not args.output.endswith((".csv", ".jsonl")):
        parser.error(f"--output '{args.output}' must end in .csv or .jsonl")
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise UserError(f"--output '{args.output}' already exists; pass --overwrite to replace it")
    if args.output and not Path(args.output).absolute().parent.is_dir():
        raise UserError(f"--output '{args.output}': the folder '{Path(args.output).parent}' does not exist; create it")

    predictor = Predictor(args.model, args.batch_size)
    columns = args.text_column or predictor.text_columns
    frame = read_inputs(args.input, columns)
    texts = frame[columns].astype(str).values.tolist()
    if predictor.task == "classification":
        results = predictor.classify([tuple(t) if len(t) > 1 else t[0] for t in texts], progress=True)
        frame["label"] = [r["label"] for r in results]
        frame["probability"] = [r["probability"] for r in results]
        for name in predictor.labels:
            frame[f"probability_{name}"] = [r["probabilities"][name] for r in results]
    else:
        frame["generation"] = predictor.generate(
            [t[0] for t in texts], args.max_new_tokens, args.temperature, args.seed, progress=True
        )
    write_outputs(frame, args.output)
    if args.output:
        print(f"wrote {len(frame)} predictions to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
