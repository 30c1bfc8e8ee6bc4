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
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLASSIFICATION_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a few rows
with the columns that the recipe's DEFAULTS name."""

import json

import pandas as pd

from common.run import from_argv
from recipes import {name}


def test_{name}_trains_evaluates_and_saves(tiny_{model}, tmp_path):
    data = {name}.DEFAULTS.data
    rows = {{column: [f"a joy from start to finish {{i}}" for i in range(12)] + [f"a tedious mess {{i}}" for i in range(12)]
            for column in data.text_column}}
    rows[data.label_column] = ["pos"] * 12 + ["neg"] * 12
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_{model}), "--train-file", str(tmp_path / "rows.csv"),
                                             "--output-dir", str(out), "--epochs", "1", "--batch-size", "4",
                                             "--precision", "fp32", "--freeze-layers", "1"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    assert json.loads((out / "config.json").read_text())["id2label"] == {{"0": "neg", "1": "pos"}}
'''

CAUSAL_LM_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a small corpus."""

import json

from common.run import from_argv
from recipes import {name}


def test_{name}_trains_evaluates_and_saves(tiny_llama, tmp_path):
    corpus = tmp_path / "corpus.txt"  # a .txt file: one document, whatever --text-column the DEFAULTS name
    corpus.write_text("\\n".join(f"line {{i}} of a small corpus" for i in range(200)))
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_llama), "--train-file", str(corpus), "--output-dir",
                                             str(out), "--epochs", "1", "--block-size", "32", "--batch-size", "4",
                                             "--max-train-samples", "8", "--precision", "fp32"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_perplexity"] > 1
'''


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


def check_data(path: str, columns: list[str], causal: bool) -> None:
    """DATA exists and holds the columns the recipe will read (a .txt corpus needs none)."""
    sys.path.insert(0, str(ROOT))
    from common.data.tables import read_file
    from common.errors import UserError

    try:
        table = read_file(path, "DATA", folders=causal)
    except UserError as e:
        fail(str(e))
    if causal and (Path(path).is_dir() or Path(path).suffix == ".txt"):
        return
    missing = [c for c in columns if c not in table.columns]
    if missing:
        fail(
            f"DATA={path} has no column {', '.join(missing)} (its columns: {', '.join(map(str, table.columns))}); "
            f"name yours with TEXT=... LABEL=..."
        )


def retarget(recipe: str, data: str | None, text: list[str] | None, label: str | None, model: str | None) -> str:
    """The recipe's DEFAULTS pointed at DATA, its TEXT and LABEL columns and MODEL; the rest as it was."""
    start = recipe.index("DEFAULTS = ")
    end = recipe.index("\n)\n", start) + 3
    defaults = recipe[start:end]
    if model:
        defaults = re.sub(
            r'model=ModelConfig\(model="[^"]*"\)', f"model=ModelConfig(model={json.dumps(model)})", defaults
        )
    causal = "CorpusData(" in defaults
    settings = []
    if data:
        settings.append(f"train_file={json.dumps(data)},  # validation/test are split off 80/10/10 unless given")
    if text:
        settings.append(f"text_column={json.dumps(text[0] if causal else text)},")
    if label:
        settings.append(f"label_column={json.dumps(label)},")
    if settings:
        opening = re.search(r"data=\w+\(\n", defaults)
        body = defaults[opening.end() :]
        if data:  # the file replaces the dataset the recipe was written for
            body = re.sub(r'^\s*dataset="[^"]*",[^\n]*\n', "", body, count=1, flags=re.M)
        defaults = defaults[: opening.end()] + "".join(f"        {line}\n" for line in settings) + body
    return recipe[:start] + defaults + recipe[end:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the new recipe's name: lowercase letters, digits and _ (a Python module name)")
    parser.add_argument("source", nargs="?", default="bert_classification", help="the recipe to copy")
    parser.add_argument("--data", help="the training file (relative to where the recipe runs: the repo root)")
    parser.add_argument("--text", nargs="+", metavar="COLUMN", help="its text column (two for sentence pairs)")
    parser.add_argument("--label", metavar="COLUMN", help="its label column (classification)")
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
    causal = "CausalLMConfig" in recipe
    if args.label and causal:
        fail(f"LABEL= is for classification; {source} is a causal LM (it reads TEXT= only)")
    if args.data:
        columns = (args.text or ["text"])[:1] if causal else [*(args.text or ["text"]), args.label or "label"]
        check_data(args.data, columns, causal)
    recipe = retarget(recipe, args.data, args.text, args.label, args.model)
    recipe = recipe.replace(f"recipes/{source}.py", f"recipes/{name}.py").replace(
        f"outputs/{source}", f"outputs/{name}"
    )
    recipe = recipe.replace(
        '"""', f'"""{name}: started from recipes/{source}.py. ', 1
    )  # the first line `make recipes` shows
    length = "block_size: 512" if causal else "max_length: 256       # default: auto, from the training texts"
    config = CONFIG_TEMPLATE.format(name=name, source=f"recipes/{source}.py", length=length)
    if causal:
        test = CAUSAL_LM_TEST
    else:
        decoder = "pad_with_end_of_text(" in recipe  # the decoder classifier: its smoke test uses a tiny GPT-2
        test = CLASSIFICATION_TEST.replace("{model}", "gpt2" if decoder else "bert")
    test = test.format(name=name, source=f"recipes/{source}.py")

    for kind, text in (("recipe", recipe), ("config", config), ("test", test)):
        targets[kind].write_text(text)
        print(f"wrote {targets[kind].relative_to(ROOT)}")
    print(
        f"next: read DEFAULTS in recipes/{name}.py (model, data, columns, budget), then `make test ARGS='-k {name}'` "
        f"and `.venv/bin/python recipes/{name}.py`"
    )


if __name__ == "__main__":
    main()
