"""The task seam: every kind of run registered once, named once, light to import; no shared code asks which kind."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from common import tasks
from common.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def test_each_task_is_registered_under_the_name_its_configuration_records():
    for name in tasks.TASKS:
        task = tasks.get(name)
        assert task.name == name and task.config.task == name
        assert task.config().flat()["task"] == name  # what run_config.json says, and --config reads back
    with pytest.raises(UserError, match="not a kind of run this version knows"):
        tasks.get("summarization")


def test_a_task_module_loads_neither_torch_nor_transformers():
    """Recipes import their task module before --help answers, which must not wait seconds for torch."""
    probe = "import sys, importlib\n"
    probe += "".join(f"importlib.import_module({module!r})\n" for module in tasks.TASKS.values())
    probe += "print('torch' in sys.modules, 'transformers' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert loaded.stdout.split() == ["False", "False"], loaded.stderr


@pytest.mark.parametrize(
    "architecture, adapter, expected",
    [
        ("GPT2LMHeadModel", None, "causal_lm"),  # a causal LM, whatever its name says
        ("LlamaForCausalLM", None, "causal_lm"),
        ("BertForSequenceClassification", None, "classification"),
        ("MyOwnForSequenceClassification", None, "classification"),
        ("LlamaForCausalLM", "SEQ_CLS", "classification"),  # a LoRA adapter: peft's task type decides
        ("LlamaForCausalLM", "CAUSAL_LM", "causal_lm"),
        ("BertForMaskedLM", None, None),
    ],
)
def test_a_saved_model_without_a_record_is_recognized_by_its_architecture(architecture, adapter, expected):
    found = tasks.for_saved_model(None, architecture, adapter)
    assert (found.name if found else None) == expected


def test_a_recorded_task_wins_over_the_architecture():
    assert tasks.for_saved_model("classification", "LlamaForCausalLM").name == "classification"


def test_the_http_routes_of_different_tasks_do_not_collide():
    owners = {}
    for task in tasks.every():
        for route in task.routes:
            assert owners.setdefault(route.path, route) is route or owners[route.path].answer is route.answer, route
    assert {"/predict", "/generate"} <= set(owners)


def test_the_code_shared_by_every_kind_of_run_never_asks_which_kind_it_is():
    """A kind's own behaviour lives in its task module: elsewhere in common/ no task name is compared or looked up."""
    asking = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](classification|causal_lm|chat|generation)["']|task\s*==""")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "common").rglob("*.py")
        if path.parent.name != "tasks"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if asking.search(line)
    ]
    assert not found, found


def test_a_copied_recipe_is_known_for_a_decoder_by_what_it_calls_not_by_what_it_mentions():
    from common.tasks.base import calls

    decoder, encoder = (ROOT / "recipes" / f"{name}.py" for name in ("gpt2_sentiment", "bert_classification"))
    assert calls(decoder.read_text(), "pad_with_end_of_text")
    mentions = (
        encoder.read_text() + '\n# unlike pad_with_end_of_text(tokenizer, model)\nNOTE = "pad_with_end_of_text("\n'
    )
    assert not calls(mentions, "pad_with_end_of_text")  # the text test counted these two
