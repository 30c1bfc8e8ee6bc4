"""What the code shared by every kind of run asks of a kind: the `Task`.

A task module (classification.py, causal_lm.py, chat.py) holds what differs between kinds of run: the run's
configuration class, and a Task that says the rest to the shared code: what report.md and the model card show of
its evaluation, how a saved run of it is loaded and answers (predict and the HTTP server), and what
`make new-recipe` writes for it. The building blocks it uses live in the layers below (data, model, train,
evaluate, report), and recipes call those directly.

A recipe imports its task module before it answers --help, which must not wait seconds for torch: so a task module
imports torch, transformers and the layers that load them inside the functions that use them
(tests/common/tasks/test_tasks.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import AfterValidator

from common.config import RunConfig
from common.errors import UserError


class Refusal(Exception):
    """A request a saved run cannot answer as asked: the server answers `status` (4xx) with the message, one line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Route:
    """An HTTP endpoint of a kind of run: POST `path` with a JSON body that `request` (a pydantic model) reads;
    `answer(run, request, max_batch)` returns the JSON answer or raises Refusal. `example` is a body to show."""

    path: str
    request: type
    answer: Callable
    example: str


def _text(value: str) -> str:
    """A text the tokenizer can read: not blank, and valid Unicode (JSON may carry a lone surrogate "\\ud800")."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate such as \\ud800)") from None
    if not value.strip():
        raise ValueError("is empty; send some text")
    return value


Text = Annotated[str, AfterValidator(_text)]  # a request's text: pydantic checks it


class Task:
    """A kind of run. A subclass sets the class attributes and overrides what its kind does differently."""

    name: ClassVar[str]  # run_config.json's "task"
    config: ClassVar[type[RunConfig]]  # the run's configuration: its groups of settings, hence its flags
    pipeline_tag: ClassVar[str]  # the hub's pipeline tag, and transformers.pipeline(pipeline_tag, model=RUN)
    model_class: ClassVar[str]  # the transformers Auto class that loads a saved run
    main_metrics: ClassVar[tuple[str, ...]]  # the test metrics a model card shows
    curve_metric: ClassVar[str]  # the validation metric training_curves.png draws beside the loss
    does: ClassVar[str]  # what a saved run does, for the server's hints ("classifies text")
    routes: ClassVar[tuple[Route, ...]] = ()  # what the HTTP server answers for a run of this kind
    # make new-recipe: the Make variables a recipe of this kind takes for its data's columns (TEXT=, LABEL=) -> the
    # data settings they set
    recipe_columns: ClassVar[dict[str, str]] = {}

    # ---- report.md, the model card
    def report(self, evaluation):
        """What the recipe's evaluation adds to the run's files (a common.report.ReportParts)."""
        raise NotImplementedError

    def load_snippet(self, where: str) -> str:
        """The model card's code that loads the saved run from `where` (a folder or hub id) and uses it."""
        raise NotImplementedError

    # ---- a saved run: `run` is a common.serve.predict.Predictor (the model, its tokenizer and the run's record)
    def recognizes(self, architecture: str, adapter_task_type: str | None) -> bool:
        """Whether a saved model with no record of its run (no run_config.json) is of this kind."""
        return False

    def describe(self, run) -> dict:
        """What GET /health says of a saved run beyond its name and task."""
        return {}

    def input_columns(self, run_config: dict) -> list[str]:
        """The columns predict reads from a table: the run's text column(s)."""
        columns = run_config.get("text_column") or ["text"]
        return [columns] if isinstance(columns, str) else list(columns)

    def read_input(self, frame):
        """The rows predict reads, as `frame` (one column per input column) holds them; a UserError names a bad one."""
        return frame

    def predict(self, run, frame, columns: list[str], *, max_new_tokens: int, temperature: float, seed: int):
        """`frame` with this kind's answers in new columns (predict's output)."""
        raise NotImplementedError

    # ---- make new-recipe
    def recipe_settings(self, columns: dict[str, str]) -> dict:
        """DEFAULTS.data settings from the Make variables given ({"TEXT": "body"} -> {"text_column": ...})."""
        return {self.recipe_columns[variable]: value for variable, value in columns.items()}

    def check_recipe_data(self, path: str, settings: dict) -> None:
        """DATA= holds what the new recipe will read, its column `settings` ({"text_column": ["body"], ...}): a
        UserError names the problem."""
        from common.data import read_file

        columns = [c for value in settings.values() if value for c in ([value] if isinstance(value, str) else value)]
        table = read_file(path, "DATA", folders=False)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            name_yours = " ".join(f"{variable}=..." for variable in self.recipe_columns)
            raise UserError(
                f"DATA={path} has no column {', '.join(missing)} (its columns: {', '.join(map(str, table.columns))}); "
                f"name yours with {name_yours}"
            )

    def smoke_test(self, name: str, source: str, recipe: str) -> str:
        """tests/recipes/test_NAME.py for recipes/NAME.py, copied from recipes/SOURCE.py (whose text is `recipe`)."""
        raise NotImplementedError

    def hint(self) -> str:
        """Where to send a request instead, for a route of another kind ("POST to /predict with {...}")."""
        return " or ".join(f"POST to {route.path} with {route.example}" for route in self.routes)


def calls(source: str, name: str) -> bool:
    """Whether the Python `source` calls a function named `name` (f() or module.f()), read from its syntax tree: a
    comment or a string that mentions the name does not count."""
    import ast

    return any(
        isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
        for node in ast.walk(ast.parse(source))
    )
