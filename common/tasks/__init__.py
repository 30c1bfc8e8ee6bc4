"""Tasks: the kinds of run, a module each (its configuration and its Task, common.tasks.base), and the registry
that finds one by name (run_config.json's "task") or for a saved model that has no record of its run.

A new kind of run is a module here and a line in TASKS; the code shared by every kind asks its Task the rest.
"""

from __future__ import annotations

import importlib

from common.errors import UserError
from common.tasks.base import Refusal, Route, Task, Text

# name -> the module that defines it, imported when first asked for (--help must not wait for all of them)
TASKS = {
    "classification": "common.tasks.classification",
    "causal_lm": "common.tasks.causal_lm",
    "chat": "common.tasks.chat",
}


def get(name: str) -> Task:
    """The task of this name; a UserError for one this version does not know (a run saved by a newer one)."""
    if name not in TASKS:
        raise UserError(f"'{name}' is not a kind of run this version knows ({', '.join(TASKS)}); update lm-recipes")
    return importlib.import_module(TASKS[name]).TASK


def every() -> list[Task]:
    return [get(name) for name in TASKS]


def for_saved_model(record: str | None, architecture: str, adapter_task_type: str | None = None) -> Task | None:
    """The task of a saved model: the one its run recorded, else the first that recognizes its architecture (or,
    for a LoRA adapter, peft's task type); None when none does."""
    if record:
        return get(record)
    return next((task for task in every() if task.recognizes(architecture, adapter_task_type)), None)


__all__ = ["TASKS", "Refusal", "Route", "Task", "Text", "every", "for_saved_model", "get"]
