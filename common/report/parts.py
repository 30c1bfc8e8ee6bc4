"""What a kind of run's evaluation adds to the files of its output folder, as data: made by its task (common.tasks)
from the evaluation, rendered by run_files, run_report and model_card, which are the same for every kind."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReportParts:
    data: str = ""  # report.md's Data section: the splits and what they hold
    caveats: list[str] = field(default_factory=list)  # doubts about the numbers: above the metrics, in the card too
    under_metrics: list[str] = field(default_factory=list)  # lines under report.md's metrics table (an interval)
    sections: list[str] = field(default_factory=list)  # report.md's sections after Training
    shown_elsewhere: tuple[str, ...] = ()  # metric-name prefixes a section shows (per class): not in the table
    files: dict[str, str | bytes] = field(default_factory=dict)  # more files of the run (errors.csv, ...)
    test: dict = field(default_factory=dict)  # evaluation.json's "test"
    card_about: str = ""  # the end of the model card's first sentence (" (labels: neg, pos)")
    card_lines: list[str] = field(default_factory=list)  # lines under the model card's test results
    card_every: str = ", over training,"  # where else report.md shows every metric (", per class and over training,")
