"""Reporting: renders what a run measured (common.evaluate) as the terminal table, Markdown, PNG, HTML and csv."""

from common.report.card import model_card
from common.report.console import format_value, metrics_table, print_metrics
from common.report.files import run_files
from common.report.markdown import kfold_report, run_report, search_report
from common.report.parts import ReportParts

__all__ = [
    "ReportParts",
    "format_value",
    "kfold_report",
    "metrics_table",
    "model_card",
    "print_metrics",
    "run_files",
    "run_report",
    "search_report",
]
