"""`make new-recipe`: the copied recipe, its config and its smoke test land in place and pass in a copy of the repo."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def repo(tmp_path):
    """A copy of the project's code (not its .venv or outputs) to add recipes to."""
    copy = tmp_path / "repo"
    for part in ("common", "recipes", "configs", "tests", "tools"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


def new_recipe(repo: Path, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/new_recipe.py", *words], cwd=repo, capture_output=True, text=True)


@pytest.mark.parametrize("source", ["bert_classification", "gpt2_sentiment", "causal_lm"])
def test_a_new_recipe_is_listed_configured_and_tested(repo, source):
    made = new_recipe(repo, "ticket_router", source)
    assert made.returncode == 0, made.stderr
    recipe = (repo / "recipes" / "ticket_router.py").read_text()
    assert (
        'output_dir="outputs/ticket_router"' in recipe
        and f"recipes/{source}.py" not in recipe.split('"""')[1].split("\n", 1)[1]
    )
    assert "output_dir: outputs/ticket_router" in (repo / "configs" / "ticket_router.yaml").read_text()
    listing = subprocess.run([sys.executable, "-m", "recipes"], cwd=repo, capture_output=True, text=True).stdout
    assert "recipes/ticket_router.py" in listing and "started from recipes/" in listing
    # the new smoke test, and the config tests that now include the new recipe, pass in the copy
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/recipes/test_ticket_router.py",
            "tests/recipes/test_configs_and_outputs.py",
            "-k",
            "ticket_router",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "3 passed" in tests.stdout  # smoke test, config parses, config equals the recipe's defaults


def test_new_recipe_never_replaces_files_and_checks_its_words(repo):
    before = (repo / "recipes" / "causal_lm.py").read_text()
    taken = new_recipe(repo, "causal_lm", "bert_classification")
    assert taken.returncode == 2 and "recipes/causal_lm.py, configs/causal_lm.yaml already exist(s)" in taken.stderr
    assert (repo / "recipes" / "causal_lm.py").read_text() == before
    bad_name = new_recipe(repo, "My-Task")
    assert bad_name.returncode == 2 and "must be lowercase letters" in bad_name.stderr
    bad_source = new_recipe(repo, "my_task", "no_such_recipe")
    assert bad_source.returncode == 2 and "is not a recipe; choose one of: bert_classification" in bad_source.stderr
    assert not (repo / "recipes" / "my_task.py").exists()
