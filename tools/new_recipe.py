"""Start a new recipe from an existing one: `make new-recipe NAME=ticket_router FROM=bert_classification`.

Writes three files, renamed, and never replaces one that exists:
  recipes/NAME.py                  the copied recipe (its output folder becomes outputs/NAME)
  configs/NAME.yaml                its config
  tests/recipes/test_NAME.py       a smoke test: the recipe trains a tiny model on a few rows and saves a run
`make test` then covers the new recipe; the README's "Retarget a recipe" shows what to change in it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLASSIFICATION_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a few rows."""

import json

from common.run import from_argv
from recipes import {name}

ROWS = ["text,label"] + [f"a joy from start to finish {{i}},pos" for i in range(12)] + [f"a tedious mess {{i}},neg" for i in range(12)]


def test_{name}_trains_evaluates_and_saves(tiny_{model}, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("\\n".join(ROWS) + "\\n")
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_{model}), "--train-file", str(data), "--output-dir",
                                             str(out), "--epochs", "1", "--batch-size", "4", "--max-length", "32",
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
    corpus = tmp_path / "corpus.txt"
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the new recipe's name: lowercase letters, digits and _ (a Python module name)")
    parser.add_argument("source", nargs="?", default="bert_classification", help="the recipe to copy")
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
    recipe = recipe.replace(f"recipes/{source}.py", f"recipes/{name}.py").replace(
        f"outputs/{source}", f"outputs/{name}"
    )
    recipe = recipe.replace(
        '"""', f'"""{name}: started from recipes/{source}.py. ', 1
    )  # the first line `make recipes` shows
    config_file = ROOT / "configs" / f"{source}.yaml"
    config = config_file.read_text() if config_file.exists() else ""
    for old, new in (
        (f"recipes/{source}.py", f"recipes/{name}.py"),
        (f"configs/{source}.yaml", f"configs/{name}.yaml"),
        (f"outputs/{source}", f"outputs/{name}"),
    ):
        config = config.replace(old, new)
    config = f"# started from configs/{source}.yaml\n" + config
    if "CausalLMConfig" in recipe:
        test = CAUSAL_LM_TEST
    else:
        test = CLASSIFICATION_TEST.replace("{model}", "gpt2" if "gpt2" in source or "smollm2" in recipe else "bert")
    test = test.format(name=name, source=f"recipes/{source}.py")

    for kind, text in (("recipe", recipe), ("config", config), ("test", test)):
        targets[kind].write_text(text)
        print(f"wrote {targets[kind].relative_to(ROOT)}")
    print(
        f"next: edit DEFAULTS in recipes/{name}.py (model, data, columns), then `make test ARGS='-k {name}'` and "
        f"`.venv/bin/python recipes/{name}.py`"
    )


if __name__ == "__main__":
    main()
