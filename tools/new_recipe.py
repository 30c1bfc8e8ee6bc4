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

    tree = ast.parse(recipe)
    made_of = next(
        node.value.func.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
    )
    return next(task for task in tasks.every() if task.config.__name__ == made_of)


def check_data(task, path: str, settings: dict) -> None:
    """DATA exists and holds the columns the recipe will read (its column `settings`, defaults and given)."""
    from common.errors import UserError

    try:
        task.check_recipe_data(path, settings)
    except UserError as e:
        fail(str(e))


def retarget(recipe: str, data: str | None, settings: dict, model: str | None) -> str:
    """The recipe's DEFAULTS pointed at DATA, the data `settings` (its columns) and MODEL; the rest as it was."""
    start = recipe.index("DEFAULTS = ")
    end = recipe.index("\n)\n", start) + 3
    defaults = recipe[start:end]
    if model:
        defaults = re.sub(
            r'model=ModelConfig\(model="[^"]*"\)', f"model=ModelConfig(model={json.dumps(model)})", defaults
        )
    lines = []
    if data:
        lines.append(f"train_file={json.dumps(data)},  # validation/test are split off 80/10/10 unless given")
    lines += [f"{name}={json.dumps(value)}," for name, value in settings.items()]
    if lines:
        opening = re.search(r"data=\w+\(\n", defaults)
        body = defaults[opening.end() :]
        if data:  # the file replaces the dataset the recipe was written for
            body = re.sub(r'^\s*dataset="[^"]*",[^\n]*\n', "", body, count=1, flags=re.M)
        defaults = defaults[: opening.end()] + "".join(f"        {line}\n" for line in lines) + body
    return recipe[:start] + defaults + recipe[end:]


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
