"""--kfold K: K models on stratified folds of every labelled row, each fold's metrics and their mean +- std.

Each fold is an ordinary run of the same recipe (its own main(), with the fold's rows as --train-file and the
held-out fold as --validation-file and --test-file), saved in OUTPUT_DIR/fold-N with its own report.
OUTPUT_DIR/kfold.json and OUTPUT_DIR/report.md hold the table across folds.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from common import cli, data, reporting
from common.errors import UserError

logger = logging.getLogger(__name__)

# flags that cross-validation sets for every fold run
_FOLD_FLAGS = {"--kfold", "--train-file", "--validation-file", "--test-file", "--output-dir", "--dataset",
               "--dataset-config", "--max-eval-samples", "--max-test-samples"}


def labelled_rows(args) -> pd.DataFrame:
    """Every labelled row the recipe would see (all given splits), cleaned and de-duplicated."""
    splits = data.load_splits(args.train_file, args.validation_file, args.test_file, args.dataset, args.dataset_config)
    data.require_columns(splits, [*args.text_column, args.label_column], "--text-column/--label-column")
    splits = data.clean(splits, args.text_column, args.label_column)
    rows = pd.concat(splits.values(), ignore_index=True)[[*args.text_column, args.label_column]]
    return rows.drop_duplicates(subset=args.text_column, ignore_index=True)


def folds(labels, k: int, seed: int) -> list[np.ndarray]:
    """Held-out row indices of each of k stratified folds: disjoint, together every row once."""
    labels = np.asarray(labels).astype(str)
    smallest = pd.Series(labels).value_counts().min()
    if smallest < k:
        raise UserError(f"--kfold {k}: the rarest class has only {smallest} rows, fewer than the {k} folds; lower --kfold")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [held_out for _, held_out in splitter.split(np.zeros(len(labels)), labels)]


def run(main, args, argv: list[str] | None) -> dict:
    """Train one model per fold through the recipe's own main(); write kfold.json and report.md."""
    if args.early_stopping_patience:
        raise UserError("--kfold tests each fold on its held-out rows, which early stopping would also choose the model "
                        "on; drop --early-stopping-patience")
    rows = labelled_rows(args)
    held_out = folds(rows[args.label_column], args.kfold, args.seed)
    output_dir = Path(args.output_dir)
    base = cli.without_flags(list(sys.argv[1:] if argv is None else map(str, argv)), _FOLD_FLAGS)
    results = []
    with tempfile.TemporaryDirectory(prefix="lm-recipes-kfold-") as scratch:
        for number, indices in enumerate(held_out, start=1):
            train_file, test_file = Path(scratch) / f"train-{number}.csv", Path(scratch) / f"held-out-{number}.csv"
            rows.drop(index=indices).to_csv(train_file, index=False)
            rows.iloc[indices].to_csv(test_file, index=False)
            logger.info("fold %d of %d: %d training rows, %d held out", number, args.kfold, len(rows) - len(indices), len(indices))
            main([*base, "--kfold", "0", "--train-file", train_file, "--validation-file", test_file, "--test-file", test_file,
                  "--output-dir", output_dir / f"fold-{number}"])
            results.append(json.loads((output_dir / f"fold-{number}" / "metrics.json").read_text()))
    names = [k for k in results[0] if k.startswith("test_") and isinstance(results[0][k], (int, float))
             and not k.endswith(("_runtime", "_per_second", "_support"))]
    summary = {"k": args.kfold, "rows": len(rows), "folds": [{n: r[n] for n in names} for r in results],
               "mean": {n: float(np.mean([r[n] for r in results])) for n in names},
               "std": {n: float(np.std([r[n] for r in results], ddof=1)) for n in names}}
    (output_dir / "kfold.json").write_text(json.dumps(summary, indent=1) + "\n")
    (output_dir / "report.md").write_text(kfold_report(summary, vars(args)))
    reporting.print_metrics(f"{args.kfold}-fold cross-validation (mean)", summary["mean"],
                            [n for n in ("test_accuracy", "test_macro_f1", "test_mcc", "test_loss") if n in names])
    return summary


def kfold_report(summary: dict, config: dict) -> str:
    k = summary["k"]
    header = "| metric | " + " | ".join(f"[fold {i}](fold-{i}/report.md)" for i in range(1, k + 1)) + " | mean +- std |"
    lines = [f"# {k}-fold cross-validation: {config.get('output_dir')}", "",
             f"`{config.get('model')}` on {summary['rows']} labelled rows of `{config.get('train_file') or config.get('dataset')}`, "
             f"split into {k} stratified folds (seed {config.get('seed')}). Each fold's model trains on the other "
             f"{k - 1} folds and is tested on its own; each has its full report in `fold-N/`.", "",
             "```bash", reporting.command(), "```", "", header, "|---" * (k + 2) + "|"]
    for name in summary["mean"]:
        values = " | ".join(reporting.format_value(fold[name]) for fold in summary["folds"])
        lines.append(f"| {name[len('test_'):]} | {values} | {summary['mean'][name]:.4f} +- {summary['std'][name]:.4f} |")
    return "\n".join(lines) + "\n"
