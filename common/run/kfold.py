"""--kfold K: K models on stratified folds of every labelled row, each fold's metrics and their mean +- std.

Each fold is an ordinary run of the same recipe: its main() with a config derived from the run's, the fold's rows
as the training file and the held-out fold as validation and test file, saved in OUTPUT_DIR/fold-N with its own
report. OUTPUT_DIR/kfold.json and OUTPUT_DIR/report.md hold the table across folds.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from common.config import RunConfig
from common.data import labelled_rows
from common.errors import UserError
from common.report import kfold_report, print_metrics
from common.run.output import staged
from common.train.checkpoints import RUN_CONFIG, mark_run

logger = logging.getLogger(__name__)


def folds(labels, k: int, seed: int) -> list[np.ndarray]:
    """Held-out row indices of each of k stratified folds: disjoint, together every row once."""
    labels = np.asarray(labels).astype(str)
    smallest = pd.Series(labels).value_counts().min()
    if smallest < k:
        raise UserError(
            f"--kfold {k}: the rarest class has only {smallest} rows, fewer than the {k} folds; lower --kfold"
        )
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [held_out for _, held_out in splitter.split(np.zeros(len(labels)), labels)]


def run(main, config: RunConfig) -> dict:
    """Train one model per fold through the recipe's own main(); write kfold.json and report.md."""
    k, label_column = config.runs.kfold, config.data.label_column
    rows = labelled_rows(config.data)
    held_out = folds(rows[label_column], k, config.training.seed)
    output_dir = Path(config.output.output_dir)
    with staged(output_dir) as staging:  # cut off in a fold: --output-dir stays as it was
        results = _run_folds(main, config, rows, held_out, staging)
        for number in range(1, k + 1):
            _moved(staging / f"fold-{number}", staging, output_dir)
        names = [
            n
            for n in results[0]
            if n.startswith("test_")
            and isinstance(results[0][n], (int, float))
            and not n.endswith(("_runtime", "_per_second", "_support"))
        ]
        summary = {
            "k": k,
            "rows": len(rows),
            "folds": [{n: r[n] for n in names} for r in results],
            "mean": {n: float(np.mean([r[n] for r in results])) for n in names},
            "std": {n: float(np.std([r[n] for r in results], ddof=1)) for n in names},
        }
        (staging / "kfold.json").write_text(json.dumps(summary, indent=1) + "\n")
        (staging / "report.md").write_text(kfold_report(summary, config))
        mark_run(staging, [f"fold-{n}" for n in range(1, k + 1)] + ["kfold.json", "report.md"])
    print_metrics(
        f"{k}-fold cross-validation (mean)",
        summary["mean"],
        [n for n in ("test_accuracy", "test_macro_f1", "test_mcc", "test_loss") if n in names],
    )
    return summary


def _moved(fold: Path, staging: Path, output_dir: Path) -> None:
    """A fold was saved in the staging folder: the paths it recorded (run_config.json's output_dir, the title of
    report.md, the model card's load snippet) are made to name where it ends up, OUTPUT_DIR/fold-N."""
    config = json.loads((fold / RUN_CONFIG).read_text())
    config["output_dir"] = str(output_dir / fold.name)
    (fold / RUN_CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
    for name in ("report.md", "README.md"):
        if (fold / name).is_file():
            text = (fold / name).read_text()
            (fold / name).write_text(text.replace(str(staging / fold.name), str(output_dir / fold.name)))


def _run_folds(main, config: RunConfig, rows: pd.DataFrame, held_out: list, output_dir: Path) -> list[dict]:
    """Each fold through the recipe's main(), saved in OUTPUT_DIR/fold-N (OUTPUT_DIR: the staging folder);
    their metrics.json."""
    k, results = len(held_out), []
    with tempfile.TemporaryDirectory(prefix="lm-recipes-kfold-") as scratch:
        for number, indices in enumerate(held_out, start=1):
            train_file, test_file = Path(scratch) / f"train-{number}.csv", Path(scratch) / f"held-out-{number}.csv"
            rows.drop(index=indices).to_csv(train_file, index=False)
            rows.iloc[indices].to_csv(test_file, index=False)
            logger.info(
                "fold %d of %d: %d training rows, %d held out", number, k, len(rows) - len(indices), len(indices)
            )
            main(
                config.derive(
                    kfold=0,
                    train_file=str(train_file),
                    validation_file=str(test_file),
                    test_file=str(test_file),
                    dataset=None,
                    dataset_config=None,
                    max_test_samples=None,
                    output_dir=str(output_dir / f"fold-{number}"),
                )
            )
            results.append(json.loads((output_dir / f"fold-{number}" / "metrics.json").read_text()))
    return results
