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
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from common import tasks
from common.config.cli import RecipeParser, positive_number
from common.config.fields import non_negative, valid_seed
from common.data import read_file
from common.errors import UserError, first_line
from common.model.load import check_config_file, weights_problem
from common.runtime import run_cli, umask


class Predictor:
    """A saved output folder (plain model, merged LoRA or LoRA adapter) loaded to answer: its model, tokenizer and
    the record of its run, and `task`, its kind (common.tasks), whose functions answer with it (batched)."""

    def __init__(self, folder: str | Path, batch_size: int = 32, max_length: int | None = None):
        import transformers
        from transformers import AutoConfig, AutoTokenizer

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
            self.run_config = {}  # only the task, text column and max length come from it; the defaults do
        self.config = AutoConfig.from_pretrained(self.folder)
        adapter_file = self.folder / "adapter_config.json"
        self.task = tasks.for_saved_model(
            self.run_config.get("task"), (self.config.architectures or [""])[0], _adapter_task_type(adapter_file)
        )
        if self.task is None:
            raise UserError(
                f"'{folder}' holds a {(self.config.architectures or ['model of unknown kind'])[0]}; predict needs a "
                f"model saved by a recipe ({', '.join(tasks.TASKS)})"
            )
        model_class = getattr(transformers, self.task.model_class)
        try:
            if adapter_file.is_file():
                from common.model import lora

                self.model = lora.load(self.folder, model_class)
            else:
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
        positions = getattr(self.config.get_text_config(), "max_position_embeddings", None) or 512
        self.max_length = min(max_length or self.run_config.get("max_length") or positions, positions)
        self.positions = positions

    def batches(self, texts: list, progress: bool = False):
        """Batches of (positions, texts) in length order, so each batch pads little; callers restore the order."""
        order = sorted(range(len(texts)), key=lambda i: len(str(texts[i])))
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress, file=sys.stderr):
            positions = order[start : start + self.batch_size]
            yield positions, [texts[i] for i in positions]


def _adapter_task_type(adapter_file: Path) -> str | None:
    """peft's task type of a LoRA adapter folder (SEQ_CLS, CAUSAL_LM), or None for a plain model."""
    if not adapter_file.is_file():
        return None
    try:
        return json.loads(adapter_file.read_text()).get("task_type") or ""
    except ValueError:
        return ""


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
        # lines end at \n (or \r\n) only: str.splitlines would also cut at form feeds, \x1c-\x1e and U+2028
        texts = [line.removesuffix("\r") for line in lines.split("\n")]
        frame = pd.DataFrame({text_columns[0]: [text for text in texts if text.strip()]})
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


def beside(frame: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """Every input column as it was, then the answers; an answer named like an input column (the user's own `label`)
    is called predicted_NAME instead, and said so."""
    names = {}
    for name in answers.columns:
        names[name] = name
        while names[name] in frame.columns:
            names[name] = f"predicted_{names[name]}"
    renamed = {old: new for old, new in names.items() if old != new}
    if renamed:
        print(
            f"the input has columns named like the predictions' ({', '.join(renamed)}): they are kept, and the "
            f"predictions are in {', '.join(renamed.values())}",
            file=sys.stderr,
        )
    return pd.concat([frame, answers.rename(columns=names)], axis=1)


def write_outputs(frame: pd.DataFrame, path: str | None) -> None:
    """jsonl on standard output, or a .csv/.jsonl file written whole (via a temporary file) or not at all."""
    if path is None:
        frame.to_json(sys.stdout, orient="records", lines=True, force_ascii=False)
    elif path.endswith(".csv"):
        _write_whole(path, lambda file: frame.to_csv(file, index=False))
    else:
        _write_whole(path, lambda file: frame.to_json(file, orient="records", lines=True, force_ascii=False))


def write_text(text: str, path: str) -> None:
    """A text file written whole (via a temporary file) or not at all."""
    _write_whole(path, lambda file: file.write(text))


def _write_whole(path: str, write) -> None:
    target = Path(path)
    # a new file of a random name (O_EXCL), written through its descriptor: nothing planted beside the output (a
    # link at a name we would pick) is opened or written through; the rename replaces a link, not what it names
    descriptor, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.absolute().parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            write(file)
        os.chmod(partial, 0o644 & ~umask())
        os.replace(partial, target)
    except OSError as e:
        raise UserError(f"could not write --output '{path}' ({e.strerror or e}); choose another --output") from None
    finally:
        Path(partial).unlink(missing_ok=True)


def check_output_file(path: str, overwrite: bool, endings: str = ".csv or .jsonl") -> None:
    """Before the model loads: --output can be written, and replaces nothing unasked or that is not a file."""
    output = Path(path)
    if output.is_dir():
        raise UserError(f"--output '{path}' is a folder; give a file name ending in {endings}")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise UserError(f"--output '{path}' already exists; pass --overwrite to replace it")
    if output.exists() and not output.is_file():
        raise UserError(f"--output '{path}' is not a regular file; give another --output")
    folder = output.absolute().parent
    if not folder.is_dir():
        raise UserError(f"--output '{path}': the folder '{output.parent}' does not exist; create it")
    if not os.access(folder, os.W_OK):
        raise UserError(f"--output '{path}': cannot write to the folder '{folder}'; choose a folder you can write to")


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
    if args.output:
        check_output_file(args.output, args.overwrite)

    predictor = Predictor(args.model, args.batch_size)
    task = predictor.task
    columns = args.text_column or task.input_columns(predictor.run_config)
    frame = task.read_input(read_inputs(args.input, columns))
    options = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    answers = task.predict(predictor, frame[columns].copy(), columns, **options).drop(columns=columns)
    write_outputs(beside(frame, answers), args.output)
    if args.output:
        print(f"wrote {len(frame)} predictions to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
