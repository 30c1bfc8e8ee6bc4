"""`make new-recipe`: the copied recipe, its config and its smoke test land in place and pass in a copy of the repo."""

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the made recipe's name: one no user picks, so that these tests also pass in a checkout that has, say, the
# README's ticket_router (a fixed name of the README's collided with it in a fresh clone)
NAME = f"probe_{uuid.uuid4().hex[:8]}"


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


@pytest.mark.parametrize("source", ["bert_classification", "gpt2_sentiment", "causal_lm", "chat_sft"])
def test_a_new_recipe_is_listed_configured_and_tested(repo, source):
    made = new_recipe(repo, NAME, source)
    assert made.returncode == 0, made.stderr
    recipe = (repo / "recipes" / f"{NAME}.py").read_text()
    assert (
        f'output_dir="outputs/{NAME}"' in recipe
        and f"recipes/{source}.py" not in recipe.split('"""')[1].split("\n", 1)[1]
    )
    config = (repo / "configs" / f"{NAME}.yaml").read_text()
    assert f"python recipes/{NAME}.py --config configs/{NAME}.yaml" in config
    assert all(line.startswith("#") for line in config.splitlines())  # changes nothing until a key is uncommented
    listing = subprocess.run([sys.executable, "-m", "recipes"], cwd=repo, capture_output=True, text=True).stdout
    assert f"recipes/{NAME}.py" in listing and "started from recipes/" in listing
    assert recipe_tests_pass(repo)


def recipe_tests_pass(repo: Path) -> bool:
    """The new smoke test, and the config tests that now include the new recipe, pass in the copy."""
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/recipes/test_{NAME}.py",
         "tests/recipes/test_configs_and_outputs.py", "-k", NAME],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    return "3 passed" in tests.stdout  # smoke test, config parses, config equals the recipe's defaults


def test_a_new_recipe_pointed_at_a_users_csv_reads_its_columns_and_its_smoke_test_follows_them(repo):
    import pandas as pd

    (repo / "data").mkdir()
    tickets = pd.DataFrame(
        {"id": range(6), "body": ["printer jam"] * 3 + ["refund late"] * 3, "team": ["it"] * 3 + ["billing"] * 3}
    )
    tickets.to_csv(repo / "data" / "tickets.csv", index=False)
    made = new_recipe(repo, NAME, "bert_classification", "--data", "data/tickets.csv", "--text", "body",
                      "--label", "team", "--model", "embedded:minilm-l6")  # fmt: skip
    assert made.returncode == 0, made.stderr
    recipe = (repo / "recipes" / f"{NAME}.py").read_text()
    defaults = recipe[recipe.index("DEFAULTS = ") : recipe.index("\n)\n", recipe.index("DEFAULTS = "))]
    assert 'train_file="data/tickets.csv"' in defaults and 'text_column=["body"]' in defaults
    assert 'label_column="team"' in defaults and "dataset=" not in defaults
    assert 'model=ModelConfig(model="embedded:minilm-l6")' in defaults
    assert recipe_tests_pass(repo)  # the smoke test writes body/team rows, as DEFAULTS name them
    # and after the user edits the columns in DEFAULTS, the smoke test follows them
    edited = recipe.replace('text_column=["body"]', 'text_column=["subject", "body"]').replace('"team"', '"queue"')
    (repo / "recipes" / f"{NAME}.py").write_text(edited)
    assert recipe_tests_pass(repo)


def test_a_recipe_whose_defaults_a_formatter_laid_out_otherwise_is_retargeted_the_same(repo):
    """DEFAULTS on one line (no trailing commas, as `ruff format --line-length 300` leaves a call without them):
    the copy's DEFAULTS are the same settings as from the recipe as written."""
    import ast
    import json

    recipe = repo / "recipes" / "bert_classification.py"
    tree = ast.parse(recipe.read_text())
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "DEFAULTS")
    lines = recipe.read_text().splitlines(keepends=True)
    one_line = ast.unparse(assign) + "\n"  # every keyword on one line, comments gone
    recipe.write_text("".join(lines[: assign.lineno - 1]) + one_line + "".join(lines[assign.end_lineno :]))
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--line-length", "300", "--config",
         "format.skip-magic-trailing-comma=true", "--isolated", str(recipe)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert "DEFAULTS = ClassificationConfig(model=ModelConfig(" in recipe.read_text()  # one line indeed
    (repo / "data").mkdir()
    (repo / "data" / "tickets.csv").write_text("body,team\nprinter jam,it\nrefund late,billing\n")
    words = ["--data", "data/tickets.csv", "--text", "body", "--label", "team", "--model", "embedded:minilm-l6"]
    made = new_recipe(repo, NAME, "bert_classification", *words)
    assert made.returncode == 0, made.stderr
    read = "import json, importlib; print(json.dumps(importlib.import_module('recipes.{}').DEFAULTS.flat()))"
    settings = subprocess.run(
        [sys.executable, "-c", read.format(NAME)], cwd=repo, capture_output=True, text=True, check=True
    )
    flat = json.loads(settings.stdout)
    assert (flat["train_file"], flat["text_column"], flat["label_column"]) == ("data/tickets.csv", ["body"], "team")
    assert flat["dataset"] is None and flat["model"] == "embedded:minilm-l6" and flat["max_eval_samples"] == 1000
    assert flat["output_dir"] == f"outputs/{NAME}" and flat["epochs"] == 2
    assert 'dataset="embedded' not in (repo / "recipes" / f"{NAME}.py").read_text()  # the file replaced it


@pytest.mark.parametrize(
    "words, message",
    [
        (["--data", "data/none.csv"], "DATA 'data/none.csv' does not exist"),
        (
            ["--data", "data/tickets.csv", "--text", "text"],
            "DATA=data/tickets.csv has no column text, label (its columns: body, team)",
        ),
        (["--data", "data/tickets.csv", "--text", "body", "--label", "team", "--model", "x"], None),
    ],
)
def test_new_recipe_checks_the_data_before_writing(repo, words, message):
    (repo / "data").mkdir()
    (repo / "data" / "tickets.csv").write_text("body,team\nprinter jam,it\n")
    made = new_recipe(repo, NAME, "bert_classification", *words)
    if message is None:
        assert made.returncode == 0, made.stderr
        return
    assert made.returncode == 2 and made.stderr.count("\n") == 1 and message in made.stderr, made.stderr
    assert not (repo / "recipes" / f"{NAME}.py").exists()


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


def test_a_chat_recipe_pointed_at_a_users_question_answer_csv(repo):
    import pandas as pd

    (repo / "data").mkdir()
    rows = pd.DataFrame({"id": range(30), "question": [f"what is {i}?" for i in range(30)], "answer": ["a"] * 30})
    rows.to_csv(repo / "data" / "faq.csv", index=False)
    made = new_recipe(repo, NAME, "chat_sft", "--data", "data/faq.csv", "--prompt", "question", "--response", "answer")
    assert made.returncode == 0, made.stderr
    recipe = (repo / "recipes" / f"{NAME}.py").read_text()
    assert 'train_file="data/faq.csv"' in recipe and 'prompt_column="question"' in recipe
    assert 'response_column="answer"' in recipe and 'dataset="embedded:chatterbot"' not in recipe
    assert recipe_tests_pass(repo)  # the smoke test writes question/answer rows, as DEFAULTS name them
    wrong = new_recipe(repo, "other_" + NAME, "chat_sft", "--data", "data/faq.csv", "--prompt", "query")
    assert wrong.returncode == 2 and "column 'query' is not in the data" in wrong.stderr


def test_a_column_variable_the_recipe_does_not_read_is_refused_before_anything_is_written(repo):
    made = new_recipe(repo, NAME, "causal_lm", "--label", "team")
    assert made.returncode == 2 and "LABEL= is not a column of a causal_lm recipe; causal_lm reads TEXT=" in made.stderr
    assert not (repo / "recipes" / f"{NAME}.py").exists()


def test_make_new_recipe_passes_data_text_label_and_model_on_and_keeps_serves_model_out():
    def planned(*words):
        dry = subprocess.run(["make", "-n", "new-recipe", *words], cwd=ROOT, capture_output=True, text=True)
        return " ".join(dry.stdout.replace("\\\n", " ").split())

    command = planned("NAME=ticket_router", "DATA=data/t.csv", "TEXT=subject body", "LABEL=team", "MODEL=gpt2")
    assert "tools/new_recipe.py ticket_router bert_classification --data data/t.csv --text subject body" in command
    assert "--label team --model gpt2" in command
    chat = planned("NAME=faq", "FROM=chat_sft", "DATA=qa.csv", "PROMPT=question", "RESPONSE=answer")
    assert "tools/new_recipe.py faq chat_sft --data qa.csv --prompt question --response answer" in chat
    assert "--model" not in planned("NAME=ticket_router")  # MODEL's Makefile default is make serve's run folder
