"""Start a new recipe from an existing one:
  make new-recipe NAME=ticket_router FROM=bert_classification DATA=data/tickets.csv TEXT=body LABEL=team

Writes three files, renamed, and never replaces one that exists:
  recipes/NAME.py                  the copied recipe; DATA, TEXT, LABEL and MODEL go into its DEFAULTS, the one
                                   place its defaults live (its output folder becomes outputs/NAME)
  configs/NAME.yaml                a config for variants of it: every key commented out, so it changes nothing
                                   until you uncomment one (paths in it are read from the file's folder)
  tests/recipes/test_NAME.py       a smoke test: the recipe trains a tiny model on a few rows with the columns
                                   its DEFAULTS name (read when the test runs, so editing DEFAULTS keeps it green)
`make test` then covers the new recipe. DATA is checked now: the file must exist and hold TEXT and LABEL.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Make variables that name the data's columns -> this tool's flags; a recipe takes those its task lists
COLUMN_VARIABLES = {"TEXT": "text", "LABEL": "label", "PROMPT": "prompt", "RESPONSE": "response"}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


CONFIG_TEMPLATE = """# Variants of recipes/{name}.py: python recipes/{name}.py --config configs/{name}.yaml
# started from {source}. The recipe's DEFAULTS are the one place its defaults live; a key here changes one of
# them for a run (flags on the command line still win). Relative paths are read from this file's folder.
# Uncomment what you change:
# train_file: ../data/my_other_data.csv
# epochs: 3
# lr: 5.0e-5
# batch_size: 16
# {length}
# trainer:                # any other TrainingArguments field
#   max_grad_norm: 0.5
"""


def source_task(recipe: str):
    """The kind of run (common.tasks) a recipe's source is, from the configuration class its DEFAULTS are made of."""
    sys.path.insert(0, str(ROOT))
    from common import tasks

    made_of = getattr(defaults_call(ast.parse(recipe)).func, "id", None)  # ClassificationConfig(...)
    return next(task for task in tasks.every() if task.config.__name__ == made_of)


def check_data(task, path: str, settings: dict) -> None:
    """DATA exists and holds the columns the recipe will read (its column `settings`, defaults and given)."""
    from common.errors import UserError

    try:
        task.check_recipe_data(path, settings)
    except UserError as e:
        fail(str(e))


class Source:
    """A recipe's text, edited at the places its syntax tree names: the rest (comments, line breaks, however a
    formatter laid it out) stays as written."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0]  # each line's first character; ast positions are UTF-8 byte columns within a line
        for line in text.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, byte_column: int) -> int:
        start = self.starts[line - 1]
        line_text = self.text[start : self.starts[line]] if line < len(self.starts) else self.text[start:]
        return start + len(line_text.encode()[:byte_column].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)


def defaults_call(tree: ast.Module) -> ast.Call:
    """The `DEFAULTS = SomeConfig(...)` call."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets):
            if isinstance(node.value, ast.Call):
                return node.value
    fail("the recipe has no `DEFAULTS = SomeConfig(...)`; copy one that has")


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def retarget(recipe: str, data: str | None, settings: dict, model: str | None) -> str:
    """The recipe's DEFAULTS pointed at DATA, the data `settings` (its columns) and MODEL; the rest as it was.
    Edits go through the syntax tree, so DEFAULTS may be laid out any way Python allows."""
    defaults = defaults_call(ast.parse(recipe))
    source = Source(recipe)
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), applied from the end backwards
    model_call = keyword(defaults, "model")
    if model and model_call and isinstance(model_call.value, ast.Call):
        given = keyword(model_call.value, "model")
        if given is not None:
            edits.append((*source.span(given.value), json.dumps(model)))
    data_call = keyword(defaults, "data")
    values = {"train_file": data} if data else {}
    values.update(settings)
    if values and data_call and isinstance(data_call.value, ast.Call):
        call = data_call.value
        inserted = []
        for name, value in values.items():
            existing = keyword(call, name)
            if existing is not None:
                edits.append((*source.span(existing.value), json.dumps(value)))
            else:
                comment = "  # validation/test are split off 80/10/10 unless given" if name == "train_file" else ""
                inserted.append(f"{name}={json.dumps(value)},{comment}")
        dataset = keyword(call, "dataset")
        if data and dataset is not None:  # the file replaces the dataset the recipe was written for
            edits.append(_removal(source, dataset))
        if inserted:
            opening = source.span(call.func)[1]  # the "(" follows the class name
            opening = recipe.index("(", opening) + 1
            line_start = source.starts[data_call.lineno - 1]
            indent = " " * (len(recipe[line_start:]) - len(recipe[line_start:].lstrip(" ")) + 4)
            block = "".join(f"\n{indent}{line}" for line in inserted)
            if recipe[opening] != "\n":  # the call went on after "(" on the same line: it goes on below
                block += f"\n{indent}"
            edits.append((opening, opening, block))
    for start, end, text in sorted(edits, reverse=True):
        recipe = recipe[:start] + text + recipe[end:]
    ast.parse(recipe)  # still Python (a SyntaxError here is this tool's bug: nothing has been written yet)
    return recipe


def _removal(source: Source, node: ast.keyword) -> tuple[int, int, str]:
    """The edit that removes a keyword argument with its comma; its whole line when it stood on one alone."""
    start, end = source.span(node)
    text = source.text
    after = re.match(r"[ \t]*,?[ \t]*(#[^\n]*)?\n?", text[end:])
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip() and after.group(0).endswith("\n"):
        return line_start, end + after.end(), ""
    comma = re.match(r"[ \t]*,?[ \t]*", text[end:])
    return start, end + comma.end(), ""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the new recipe's name: lowercase letters, digits and _ (a Python module name)")
    parser.add_argument("source", nargs="?", default="bert_classification", help="the recipe to copy")
    parser.add_argument("--data", help="the training file (relative to where the recipe runs: the repo root)")
    parser.add_argument("--text", nargs="+", metavar="COLUMN", help="its text column (two for sentence pairs)")
    parser.add_argument("--label", metavar="COLUMN", help="its label column (classification)")
    parser.add_argument("--prompt", metavar="COLUMN", help="its prompt column (chat: prompt/response pairs)")
    parser.add_argument("--response", metavar="COLUMN", help="its response column (chat: prompt/response pairs)")
    parser.add_argument("--model", help="embedded:NAME, a local folder or a hub id")
    args = parser.parse_args(argv)
    name, source = args.name, args.source.removesuffix(".py").removeprefix("recipes/")
    existing = sorted(p.stem for p in (ROOT / "recipes").glob("*.py") if not p.name.startswith("_"))
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        fail(f"NAME={name!r} must be lowercase letters, digits and _, starting with a letter (e.g. ticket_router)")
    if source not in existing:
        fail(f"FROM={source!r} is not a recipe; choose one of: {', '.join(existing)}")
    targets = {
        "recipe": ROOT / "recipes" / f"{name}.py",
        "config": ROOT / "configs" / f"{name}.yaml",
        "test": ROOT / "tests" / "recipes" / f"test_{name}.py",
    }
    taken = [str(p.relative_to(ROOT)) for p in targets.values() if p.exists()]
    if taken:
        fail(f"{', '.join(taken)} already exist(s); choose another NAME (nothing was written)")

    recipe = (ROOT / "recipes" / f"{source}.py").read_text()
    task = source_task(recipe)
    given = {variable: getattr(args, flag) for variable, flag in COLUMN_VARIABLES.items() if getattr(args, flag)}
    wrong = [variable for variable in given if variable not in task.recipe_columns]
    if wrong:
        takes = " ".join(f"{v}=" for v in task.recipe_columns)
        fail(f"{wrong[0]}= is not a column of a {task.name} recipe; {source} reads {takes} (nothing was written)")
    settings = task.recipe_settings(given)
    if args.data:
        defaults = task.config().data
        check_data(
            task, args.data, {**{field: getattr(defaults, field) for field in task.recipe_columns.values()}, **settings}
        )
    recipe = retarget(recipe, args.data, settings, args.model)
    recipe = recipe.replace(f"recipes/{source}.py", f"recipes/{name}.py").replace(
        f"outputs/{source}", f"outputs/{name}"
    )
    recipe = recipe.replace(
        '"""', f'"""{name}: started from recipes/{source}.py. ', 1
    )  # the first line `make recipes` shows
    lengths = {
        "max_length": "max_length: 256       # default: auto, from the training texts",
        "block_size": "block_size: 512",
    }
    length = next((line for setting, line in lengths.items() if setting in task.config.settings()), "epochs: 1")
    config = CONFIG_TEMPLATE.format(name=name, source=f"recipes/{source}.py", length=length)
    test = task.smoke_test(name, f"recipes/{source}.py", recipe)

    for kind, text in (("recipe", recipe), ("config", config), ("test", test)):
        targets[kind].write_text(text)
        print(f"wrote {targets[kind].relative_to(ROOT)}")
    print(
        f"next: read DEFAULTS in recipes/{name}.py (model, data, columns, budget), then `make test ARGS='-k {name}'` "
        f"and `.venv/bin/python recipes/{name}.py`"
    )


if __name__ == "__main__":
    main()
