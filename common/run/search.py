"""--search grid|random|bayes --trials N --search-space FILE: hyperparameter search with optuna.

The search space is a YAML/JSON file whose keys are flag names (any flag: lr, batch_size, epochs,
weight_decay, warmup, dropout, freeze_layers, lora_r, layer_lr_decay, ...):
  lr: [5.0e-5, 1.0e-4, 2.0e-4]              # a list: these values (the only form grid search takes)
  weight_decay: {low: 0.0, high: 0.1}       # a range: random and bayes sample inside it
  lr: {low: 1.0e-5, high: 1.0e-3, log: true}

Each trial is an ordinary run of the recipe's main() with a config derived from the run's (`config.derive`), scored on the validation split
(--best-metric; never the test split) and then deleted. The samplers are optuna's: GridSampler (every
point once), RandomSampler and TPESampler ("bayes"), seeded with --seed.
We run the recipe per trial rather than Trainer.hyperparameter_search because that only varies
TrainingArguments fields, and half of the useful knobs here (dropout, freezing, LoRA rank) change the model.
Written to OUTPUT_DIR: search.json (every trial), best_config.yaml (rerun it with --config) and report.md.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import shutil
import sys
from pathlib import Path

import torch

from common.config import RunConfig
from common.config.files import read_mapping
from common.errors import UserError
from common.report import search_report
from common.run.output import staged
from common.train.checkpoints import mark_run

logger = logging.getLogger(__name__)


def searchable(config: RunConfig) -> set[str]:
    """The settings a search may vary: all but those marked searchable=False (output folder, the search itself)."""
    return {name for name, (_, field, _) in config.settings().items() if field.metadata["searchable"]}


def read_space(path: str, config: RunConfig) -> dict:
    """The search space file, checked: known flag names, lists or {low, high[, log]} ranges."""
    space = read_mapping(path, "--search-space", "flags to lists of values or {low, high} ranges")
    if not space:
        raise UserError(f"--search-space '{path}' must map flag names to lists of values or {{low, high}} ranges")
    checked = {}
    for key, values in space.items():
        name = str(key).replace("-", "_")
        if name not in searchable(config):
            raise UserError(f"--search-space '{path}': '{key}' is not a flag that can be searched (see --help)")
        if isinstance(values, dict):
            values = {k: _number(v) if k in ("low", "high") else v for k, v in values.items()}
            if (
                set(values) - {"low", "high", "log"}
                or not {"low", "high"} <= set(values)
                or not all(isinstance(values[k], (int, float)) and math.isfinite(values[k]) for k in ("low", "high"))
                or values["low"] >= values["high"]
            ):
                raise UserError(
                    f"--search-space '{path}': '{key}' needs {{low: A, high: B}} with numbers A < B (optionally "
                    f"log: true)"
                )
            tried = [values["low"], values["high"]]
        elif isinstance(values, list) and values:
            values = [_number(v) for v in values]
            tried = values
        else:
            raise UserError(f"--search-space '{path}': '{key}' must be a list of values or a {{low, high}} range")
        for value in tried:  # each value must make a valid run, checked now rather than in trial 3
            try:
                config.derive(**{name: value})
            except UserError as e:
                raise UserError(f"--search-space '{path}': {key}: {value!r}: {e}") from None
        checked[name] = values
    return checked


def _number(value):
    """YAML reads 1e-5 (no dot) as a string: take such a string as the number it means."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def sampler(kind: str, space: dict, seed: int):
    import optuna

    if kind == "grid":
        ranges = [k for k, v in space.items() if isinstance(v, dict)]
        if ranges:
            raise UserError(
                f"--search grid needs a list of values for every key; {', '.join(ranges)} is a range "
                f"(use --search random or bayes, or list the values)"
            )
        return optuna.samplers.GridSampler(space, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def suggest(trial, space: dict) -> dict:
    values = {}
    for key, choice in space.items():
        if isinstance(choice, list):
            values[key] = trial.suggest_categorical(key, choice)
        elif isinstance(choice["low"], int) and isinstance(choice["high"], int) and not choice.get("log"):
            values[key] = trial.suggest_int(key, choice["low"], choice["high"])
        else:
            values[key] = trial.suggest_float(
                key, float(choice["low"]), float(choice["high"]), log=bool(choice.get("log"))
            )
    return values


def validation_score(history: list, metric: str) -> float:
    scores = [h[f"eval_{metric}"] for h in history if f"eval_{metric}" in h]
    if not scores:
        raise UserError(
            f"--best-metric {metric} was not computed on the validation split; choose one of "
            f"{', '.join(sorted(k[5:] for h in history for k in h if k.startswith('eval_')))}"
        )
    return float(scores[-1])


def run(main, config: RunConfig) -> dict:
    """Run the trials through the recipe's own main(); write search.json, best_config.yaml and report.md."""
    import optuna

    runs = config.runs
    space = read_space(runs.search_space, config)
    chosen = sampler(runs.search, space, config.training.seed)
    grid_size = len(list(itertools.product(*space.values()))) if runs.search == "grid" else None
    trials = grid_size if runs.search == "grid" and not runs.trials else (runs.trials or 10)
    metric = config.training.best_metric
    maximize = config.training.greater_is_better
    output_dir = Path(config.output.output_dir)
    with staged(output_dir) as staging:  # cut off in a trial: --output-dir stays as it was
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=chosen)
        trial_configs = {}

        def objective(trial):
            values = suggest(trial, space)
            folder = staging / f".trial-{trial.number}"
            logger.info("trial %d of %d: %s", trial.number + 1, trials, values)
            trial_config = config.derive(
                **values, search=None, search_space=None, trials=None, output_dir=str(folder), overwrite=True
            )
            try:
                main(trial_config)
                history = json.loads((folder / "log_history.json").read_text())
                trial_configs[trial.number] = trial_config
                return validation_score(history, metric)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # a trial's model is not kept: rerun the best from its config
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

        study.optimize(objective, n_trials=trials, catch=())
        rows = [{"trial": t.number + 1, **t.params, f"validation_{metric}": t.value} for t in study.trials]
        best = study.best_trial
        keep = searchable(config) | {"task"}
        best_config = {k: v for k, v in trial_configs[best.number].flat().items() if k in keep}
        best_config["output_dir"] = f"{config.output.output_dir}-best"
        summary = {
            "search": runs.search,
            "metric": f"validation_{metric}",
            "direction": study.direction.name.lower(),
            "trials": rows,
            "best": {"trial": best.number + 1, "params": best.params, "value": best.value},
        }
        (staging / "search.json").write_text(json.dumps(summary, indent=1) + "\n")
        import yaml

        (staging / "best_config.yaml").write_text(
            f"# best of {len(rows)} trials ({runs.search} search), validation {metric} {best.value:.4f}\n"
            f"# python {Path(sys.argv[0]).as_posix()} --config {output_dir / 'best_config.yaml'}\n"
            + yaml.safe_dump(best_config, sort_keys=False)
        )
        (staging / "report.md").write_text(search_report(summary, space, config))
        mark_run(staging, ["search.json", "best_config.yaml", "report.md"])
    print(
        f"\nbest of {len(rows)} trials: validation {metric} {best.value:.4f} with {best.params}\n"
        f"rerun it: python {sys.argv[0]} --config {output_dir / 'best_config.yaml'}"
    )
    return summary
