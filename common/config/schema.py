"""The run configuration: what a recipe run is asked to do, as typed dataclasses grouped by concern.

  RunConfig   one run of a recipe; each kind of run (common.tasks) has a subclass, whose `task` names it
    .model       which checkpoint, and how it may be loaded
    .data        where the examples come from and how they become tokens
    .training    the optimizer, schedule, precision, evaluation cadence
    .techniques  what changes the model or the loss: freezing, LoRA, dropout, losses, ...
    .output      where the run is saved, checkpoints, resume
    .runs        several runs at once: hyperparameter search (and k-fold, for classifiers)

Every field is a command-line flag of the same name (`batch_size` -> --batch-size) and a key of a --config
file; common.config.cli builds the parser from these classes. Field names are unique across the groups, so a
run can be changed by name: `config.derive(lr=2e-4, output_dir="runs/b")` returns a new, checked config.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import ClassVar

from common.config.fields import check_value, flag, parse_text, require, value_type
from common.config.groups import (
    DataConfig,
    ModelConfig,
    OutputConfig,
    Runs,
    Techniques,
    TrainingConfig,
)
from common.errors import UserError

GROUPS = ("model", "data", "training", "techniques", "output", "runs")


@dataclass(frozen=True)
class RunConfig:
    """One run of a recipe. Subclasses fix the task and the groups' types."""

    task: ClassVar[str]  # the kind of run: common.tasks has a module for each
    # The loss is summed over tokens and divided by their count in the whole step (language models), not a mean over
    # each micro-batch's examples (classifiers): Trainer must scale the two differently over processes and --grad-accum
    loss_per_token: ClassVar[bool] = False
    model: ModelConfig
    data: DataConfig
    training: TrainingConfig
    techniques: Techniques
    output: OutputConfig
    runs: Runs

    # ---- by flat name: every field of every group, in declaration order
    @classmethod
    def settings(cls) -> dict[str, tuple[str, dataclasses.Field, typing.Any]]:
        """name -> (group, field, annotation) for every setting of this kind of run."""
        hints = typing.get_type_hints(cls)
        found = {}
        for group in GROUPS:
            group_class = hints[group]
            group_hints = typing.get_type_hints(group_class)
            for f in dataclasses.fields(group_class):
                found[f.name] = (group, f, group_hints[f.name])
        return found

    def flat(self) -> dict:
        """Every setting by name, plus the task: what run_config.json holds and --config reads back."""
        return {
            "task": self.task,
            **{name: getattr(getattr(self, group), name) for name, (group, _, _) in self.settings().items()},
        }

    def derive(self, **values):
        """A copy with the named settings changed (strings are parsed as on the command line), checked."""
        settings = self.settings()
        changes: dict[str, dict] = {}
        for name, value in values.items():
            if name not in settings:
                raise UserError(f"'{name}' is not a setting of a {self.task} run (see --help)")
            group, field, annotation = settings[name]
            if isinstance(value, str) and value_type(annotation) is not str:
                try:
                    value = parse_text(field, value_type(annotation), value)
                except ValueError as e:
                    raise UserError(f"{flag(name)}: {e}") from None
            if value_type(annotation) is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            changes.setdefault(group, {})[name] = value
        updated = dataclasses.replace(
            self, **{g: dataclasses.replace(getattr(self, g), **v) for g, v in changes.items()}
        )
        updated.check()
        return updated

    def check(self) -> None:
        """Every value in range, then the rules between settings; a UserError names the flag and the fix."""
        hints = typing.get_type_hints(type(self))
        for group in GROUPS:
            if not isinstance(getattr(self, group), hints[group]):
                raise UserError(
                    f"the {group} of a {self.task} run must be a {hints[group].__name__}, got a "
                    f"{type(getattr(self, group)).__name__}"
                )
        for name, (group, field, _) in self.settings().items():
            problem = check_value(field, getattr(getattr(self, group), name))
            if problem:
                raise UserError(f"{flag(name)} {problem}")
        for group in GROUPS:
            getattr(self, group).check()
        t, out = self.training, self.output
        require(not (self.runs.search and out.resume), "--search runs its own trials: drop --resume")
        require(
            not (out.push_to_hub and (self.runs.search or self.runs.kfold)),
            "--push-to-hub uploads one model; --search and --kfold train several: push the one you choose afterwards "
            "with `hf upload`",
        )
        require(
            not (t.early_stopping_patience and out.save_steps and (not t.eval_steps or out.save_steps % t.eval_steps)),
            "--early-stopping-patience with --save-steps needs --eval-steps that divides --save-steps",
        )
        require(bool(self.model.model), "no --model given; pass --model")
        require(bool(self.output.output_dir), "no --output-dir given; pass --output-dir")
