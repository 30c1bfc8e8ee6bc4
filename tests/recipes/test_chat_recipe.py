"""The chat recipe end to end on a tiny random-weight Llama with the real SmolLM2 tokenizer (ChatML, pad == end of
turn): the formats it reads, what it writes, what it refuses, and the saved run chatting through transformers."""

import json

import pandas as pd
import pytest

from common.run import command_line, from_argv
from recipes import chat_sft
from tests.recipes.test_bad_input_catalogue import assert_one_clear_line

TINY_CHAT = ["--epochs", "1", "--batch-size", "8", "--max-new-tokens", "8", "--precision", "fp32"]


def sums(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame(
        {"question": [f"what is {i} plus one?" for i in range(n)], "answer": [f"{i + 1}" for i in range(n)]}
    )


def train(model, data, out, *flags):
    return from_argv(chat_sft.main, chat_sft.DEFAULTS, ["--model", str(model), "--train-file", str(data),
                                                        "--output-dir", str(out), *TINY_CHAT, *flags])  # fmt: skip


@pytest.fixture(scope="module")
def chat_run(tiny_llama, tmp_path_factory):
    """A chat run on question/answer pairs, long enough for the tiny model's reply loss to fall."""
    folder = tmp_path_factory.mktemp("chat")
    sums().to_csv(folder / "qa.csv", index=False)
    train(tiny_llama, folder / "qa.csv", folder / "run", "--epochs", "3", "--lr", "3e-3", "--batch-size", "4")
    return folder / "run"


def test_a_chat_run_trains_on_the_replies_and_reports_before_and_after(chat_run):
    metrics = json.loads((chat_run / "metrics.json").read_text())
    assert metrics["test_loss"] < metrics["test_loss_before"]  # the replies' loss fell
    assert {"test_chrf", "test_rouge_l", "test_exact_match", "test_stopped", "test_chrf_before"} <= set(metrics)
    report = (chat_run / "report.md").read_text()
    for part in ("## Before and after training (test)", "## Replies before and after", "## What was trained", "⟦"):
        assert part in report
    assert "what is 0 plus one?<|im_end|>\n<|im_start|>assistant\n⟦1<|im_end|>\n⟧" in report  # a person can check
    answers = pd.read_csv(chat_run / "answers.csv")
    assert list(answers.columns) == ["prompt", "references", "before", "after", "stopped_before", "stopped_after"]
    config = json.loads((chat_run / "run_config.json").read_text())
    assert config["task"] == "chat" and isinstance(config["max_length"], int) and config["max_new_tokens"] == 8
    assert (chat_run / "chat_template.jinja").exists()  # the template travels with the model
    assert json.loads((chat_run / "generation_config.json").read_text())["eos_token_id"] == 2  # <|im_end|>


def test_the_saved_run_chats_through_transformers_pipeline_as_its_card_says(chat_run):
    from transformers import pipeline

    chat = pipeline("text-generation", model=str(chat_run))
    answer = chat([{"role": "user", "content": "what is 3 plus one?"}], max_new_tokens=4)[0]["generated_text"]
    assert answer[-1]["role"] == "assistant" and answer[0]["content"] == "what is 3 plus one?"
    card = (chat_run / "README.md").read_text()
    assert 'pipeline("text-generation"' in card and "messages = [" in card and "pipeline_tag: text-generation" in card


@pytest.mark.parametrize(
    "name, rows",
    [
        ("messages.jsonl", [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}]}
                            for i in range(30)]),
        ("sharegpt.json", [{"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": "hello"}]}
                           for i in range(30)]),
        ("alpaca.jsonl", [{"instruction": "Add one.", "input": str(i), "output": str(i + 1)} for i in range(30)]),
    ],
)  # fmt: skip
def test_each_chat_format_trains(tiny_llama, tmp_path, name, rows):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(json.dumps(rows))
    metrics = train(tiny_llama, path, tmp_path / "out", "--system-prompt", "Be brief.")
    assert metrics["test_loss"] > 0 and 0 <= metrics["test_stopped"] <= 1


def run_chat(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        command_line(chat_sft.main, chat_sft.DEFAULTS, argv)
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}],
         "the train data, row 3: message 2 is from the user right after the user"),
        ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}],
         "the train data, row 3: message 2 is an empty reply; fix or remove that row"),
        ([{"messages": [{"role": "user", "content": "hi"}]}],
         "the train data, row 3: the conversation ends on the user, with no reply to learn"),
        ([{"messages": [{"role": "human", "content": "hi"}, {"role": "narrator", "content": "x"}]}],
         "message 2 has the role 'narrator'; use system, user or assistant"),
    ],
)  # fmt: skip
def test_a_malformed_conversation_is_one_line_naming_its_row(tiny_llama, tmp_path, capsys, rows, expected):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [good, good, *rows]))
    out = tmp_path / "out"
    code, err = run_chat(["--model", str(tiny_llama), "--train-file", str(path), "--output-dir", str(out)], capsys)
    assert_one_clear_line(code, err, expected)
    assert not out.exists()


def test_a_base_model_without_a_chat_template_is_refused_then_learns_chatml(tiny_gpt2, tmp_path, capsys):
    sums().to_csv(tmp_path / "qa.csv", index=False)
    words = ["--model", str(tiny_gpt2), "--train-file", str(tmp_path / "qa.csv"), *TINY_CHAT]
    code, err = run_chat([*words, "--output-dir", str(tmp_path / "a")], capsys)
    assert_one_clear_line(code, err, "has no chat template (a base model); pass --chat-template chatml")
    code, err = run_chat(
        [*words, "--output-dir", str(tmp_path / "b"), "--chat-template", "chatml", "--lora-r", "4"], capsys
    )
    assert_one_clear_line(code, err, "added <|im_start|>, <|im_end|> to the tokenizer, whose new embeddings must train")
    from_argv(
        chat_sft.main, chat_sft.DEFAULTS, [*words, "--output-dir", str(tmp_path / "c"), "--chat-template", "chatml"]
    )
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["vocab_size"] == 50257 + 2 and (tmp_path / "c" / "chat_template.jinja").exists()


def test_lora_packing_and_the_last_reply_only(tiny_llama, tmp_path):
    """The techniques and options through the same seams: a LoRA adapter on packed rows, trained on last replies."""
    from common.serve.predict import Predictor
    from common.tasks.chat import chat

    sums().to_csv(tmp_path / "qa.csv", index=False)
    train(tiny_llama, tmp_path / "qa.csv", tmp_path / "out", "--lora-r", "4", "--packing", "--train-on", "last")
    assert (tmp_path / "out" / "adapter_config.json").exists()
    run = Predictor(tmp_path / "out")
    assert (
        run.task.name == "chat" and len(chat(run, [[{"role": "user", "content": "what is 3 plus one?"}]], 4).texts) == 1
    )


def test_a_chat_run_stopped_after_a_checkpoint_resumes_to_the_same_loss(tiny_llama, tmp_path):
    """--save-steps and --resume through the same seams as the other recipes: stopped by SIGTERM after a checkpoint,
    resumed, it ends where an uninterrupted run ends."""
    import signal
    import subprocess
    import sys
    import time

    from common.train.checkpoints import last_complete_checkpoint
    from tests.conftest import ROOT, run_recipe

    sums(120).to_csv(tmp_path / "qa.csv", index=False)

    def words(out):
        return ["--model", str(tiny_llama), "--train-file", str(tmp_path / "qa.csv"), "--output-dir", str(out),
                *TINY_CHAT, "--batch-size", "4", "--epochs", "2", "--save-steps", "5", "--logging-steps", "1"]  # fmt: skip

    assert run_recipe("chat_sft", *words(tmp_path / "reference")).returncode == 0
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, str(ROOT / "recipes" / "chat_sft.py"), *words(stopped)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = last_complete_checkpoint(stopped / "checkpoints")
        if found and int(found.name.split("-")[1]) >= 30:  # in the second epoch
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.01)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()[-2000:]
    resumed = run_recipe("chat_sft", *words(stopped), "--resume")
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-2000:]
    final = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("reference", "stopped")}
    assert final["stopped"]["test_loss"] == pytest.approx(final["reference"]["test_loss"], abs=1e-4)
    history = [json.loads((tmp_path / n / "log_history.json").read_text()) for n in ("reference", "stopped")]
    last_losses = [[h["loss"] for h in run if "loss" in h][-1] for run in history]
    assert last_losses[1] == pytest.approx(last_losses[0], abs=1e-4)
