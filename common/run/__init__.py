"""Runs: the output folder (check, resume, atomic save), several runs (k-fold, search), and starting a recipe."""

from common.run.launch import command_line, from_argv, launch
from common.run.output import save_run, start_run

__all__ = ["command_line", "from_argv", "launch", "save_run", "start_run"]
