"""runs: several runs at once (hyperparameter search, and k-fold for classifiers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.config.fields import (
    non_negative,
    option,
    positive,
    require,
)
from common.config.groups.base import Group


@dataclass(frozen=True)
class Runs(Group):
    """several runs: hyperparameter search"""

    kfold: ClassVar[int] = 0  # cross-validation folds: none, unless a kind of run has the setting (ClassificationRuns)
    search: str | None = option(
        None,
        "hyperparameter search over --search-space: every grid point, random draws, or optuna's TPE",
        choices=["grid", "random", "bayes"],
        searchable=False,
    )
    search_space: str | None = option(
        None,
        "YAML/JSON: flag name -> list of values or {low, high[, log]}",
        metavar="FILE",
        searchable=False,
        is_path=True,
    )
    trials: int | None = option(
        None, "trials for --search (grid: every point unless fewer are asked for)", check=positive, searchable=False
    )

    def check(self) -> None:
        require(
            not (self.search and not self.search_space),
            "--search needs --search-space FILE; configs/search/ has examples",
        )


@dataclass(frozen=True)
class ClassificationRuns(Runs):
    """several runs: cross-validation and hyperparameter search"""

    kfold: int = option(
        0,
        "cross-validate: K models on stratified folds of all labelled rows, each tested on its own "
        "fold; OUTPUT_DIR/report.md has every fold and the mean +- std (0: off)",
        check=non_negative,
        metavar="K",
        searchable=False,
    )

    def check(self) -> None:
        super().check()
        require(self.kfold != 1, "--kfold needs at least 2 folds")
        require(not (self.search and self.kfold), "--search runs its own trials: drop --kfold")
