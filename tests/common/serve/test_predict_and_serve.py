"""common.serve.predict: files, stdin, classifiers and causal LMs, LoRA runs, and bad input (the HTTP server: test_http.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from common.errors import UserError
from common.run import from_argv
from common.serve.predict import Predictor
from common.tasks.causal_lm import generate
from common.tasks.classification import classify, labels
from recipes import gpt2_sentiment
from tests.common.serve.conftest import train_generator
from tests.conftest import cut_copy

ROOT = Path(__file__).resolve().parents[3]


def predict(*words, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "common.serve.predict", *map(str, words)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


def test_batched_predictions_equal_one_at_a_time_in_input_order(classifier_run):
    predictor = Predictor(classifier_run, batch_size=3)
    texts = ["a joy", "a much longer text that pads every other row of its batch", "a mess", "x", "a joy 3 again"]
    together = classify(predictor, texts)
    alone = [classify(predictor, [t])[0] for t in texts]
    assert [r["label"] for r in together] == [r["label"] for r in alone]
    assert [r["probability"] for r in together] == pytest.approx([r["probability"] for r in alone], abs=1e-5)
    assert all(
        set(r["probabilities"]) == {"neg", "pos"} and sum(r["probabilities"].values()) == pytest.approx(1)
        for r in together
    )


def test_predict_a_csv_uses_the_runs_text_column_and_writes_label_and_probability(classifier_run, tmp_path):
    pd.DataFrame({"id": [1, 2, 3], "review": ["a joy", "a mess", "fine"]}).to_csv(tmp_path / "in.csv", index=False)
    result = predict(classifier_run, "--input", tmp_path / "in.csv", "--output", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["id", "review", "label", "probability", "probability_neg", "probability_pos"]
    assert out["id"].tolist() == [1, 2, 3] and set(out["label"]) <= {"neg", "pos"}
    assert (out["probability"] == out[["probability_neg", "probability_pos"]].max(axis=1)).all()
    assert "predicting" in result.stderr  # the progress bar
    again = predict(classifier_run, "--input", tmp_path / "in.csv", "--output", tmp_path / "out.csv")
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr


def test_predict_reads_stdin_and_writes_jsonl(classifier_run):
    result = predict(classifier_run, stdin="a joy\n\na mess\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["review"] for r in rows] == ["a joy", "a mess"] and all(r["label"] in ("neg", "pos") for r in rows)


def test_predict_generates_for_a_causal_lm(generator_run, tmp_path):
    (tmp_path / "prompts.txt").write_text("line 3\nline 4 of\n")
    result = predict(
        generator_run, "--input", tmp_path / "prompts.txt", "--max-new-tokens", "4", "--output", tmp_path / "g.jsonl"
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["line 3", "line 4 of"] and all(r["generation"] for r in rows)
    greedy = generate(Predictor(generator_run), ["line 3", "line 4 of"], max_new_tokens=4)
    assert [r["generation"] for r in rows] == greedy  # temperature 0: greedy, the same every time


@pytest.mark.parametrize(
    "words, message",
    [
        (["--input", "missing.csv"], "--input 'missing.csv' does not exist"),
        (["--input", "{data}", "--text-column", "body"], "column 'body' is not in the input"),
        (["--output", "x.txt"], "must end in .csv or .jsonl"),
    ],
)
def test_predict_bad_input_is_one_line(classifier_run, tmp_path, words, message):
    pd.DataFrame({"review": ["a"]}).to_csv(tmp_path / "data.csv", index=False)
    result = predict(classifier_run, *[w.replace("{data}", str(tmp_path / "data.csv")) for w in words])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_predict_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = predict(tmp_path)
    assert result.returncode == 2 and "is not a saved run (no config.json)" in result.stderr


def test_a_lora_adapter_folder_predicts_like_the_reloaded_adapter(tiny_gpt2, reviews_csv, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from common.model import lora

    run = tmp_path / "lora"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--model",
            str(tiny_gpt2),
            "--train-file",
            str(reviews_csv),
            "--output-dir",
            str(run),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--freeze-layers",
            "0",
            "--lora-r",
            "4",
            "--precision",
            "fp32",
        ],
    )
    predictor = Predictor(run)
    assert predictor.task.name == "classification" and labels(predictor) == ["neg", "pos"]
    model, tokenizer = lora.load(run), AutoTokenizer.from_pretrained(run)
    with torch.no_grad():
        expected = model(**tokenizer(["a joy"], return_tensors="pt")).logits.softmax(-1)[0]
    assert classify(predictor, ["a joy"])[0]["probabilities"]["pos"] == pytest.approx(float(expected[1]), abs=1e-5)


# ---- predict: bad input and awkward runs, one line each


def test_predict_bad_files_and_models_are_one_line(classifier_run, tmp_path):
    import shutil

    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    pd.DataFrame({"id": [1, 2, 3, 4], "review": ["a joy", None, "  ", "a mess"]}).to_csv(
        tmp_path / "blank.csv", index=False
    )
    cut = cut_copy(classifier_run, tmp_path / "cut", parts=3)
    broken = tmp_path / "broken"
    shutil.copytree(classifier_run, broken)
    (broken / "config.json").write_text("{not json")
    cases = [
        ([classifier_run, "--input", tmp_path / "latin1.txt"], None, "is not valid UTF-8 (byte 3)"),
        ([classifier_run], b"caf\xe9\n", "standard input is not valid UTF-8"),
        ([classifier_run, "--input", tmp_path / "blank.csv"], None, "2 row(s) of the input have no text (row 2, 3)"),
        ([classifier_run, "--output", tmp_path / "no" / "such" / "p.csv"], b"a joy\n", "does not exist; create it"),
        ([cut], b"a joy\n", "is damaged: model.safetensors is "),
        ([broken], b"a joy\n", "config.json' is not valid JSON"),
        ([classifier_run, "--temperature", "nan"], b"a\n", "--temperature: must be a finite number"),
        ([classifier_run, "--seed", "-1"], b"a\n", "--seed: must be 0 or more"),
    ]
    for words, stdin, message in cases:
        result = subprocess.run(
            [sys.executable, "-m", "common.serve.predict", *map(str, words)],
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
        err = result.stderr.decode()
        assert result.returncode == 2 and message in err and "Traceback" not in err, (words, err[-1500:])
    assert not (tmp_path / "no").exists()


def test_predict_continues_a_gpt2_causal_lm_run(tiny_gpt2, tmp_path):
    """GPT-2's architecture is GPT2LMHeadModel, which does not end in ForCausalLM: the run's record says its task."""
    run = train_generator(tiny_gpt2, tmp_path)
    assert json.loads((run / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    predictor = Predictor(run)
    assert predictor.task.name == "causal_lm" and len(generate(predictor, ["line 3"], max_new_tokens=3)) == 1


def test_a_lora_run_names_its_base_model_portably(tiny_gpt2, reviews_csv, tmp_path):
    """adapter_config.json names the base model as the run did, so a moved virtualenv does not break the run."""
    import shutil

    base = tmp_path / "models" / "base"
    shutil.copytree(tiny_gpt2, base)
    run = tmp_path / "lora"
    words = ["--model", str(base), "--train-file", str(reviews_csv), "--output-dir", str(run), "--lora-r", "4"]
    words += ["--epochs", "1", "--batch-size", "4", "--freeze-layers", "0", "--precision", "fp32"]
    from_argv(gpt2_sentiment.main, gpt2_sentiment.DEFAULTS, words)
    adapter = json.loads((run / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base.resolve())
    expected = classify(Predictor(run), ["a joy"])[0]["probability"]
    moved = tmp_path / "elsewhere"
    base.rename(moved)  # the base model is gone from where the run saw it: one clear line
    with pytest.raises(UserError, match="needs its base model .* could not be loaded"):
        Predictor(run)
    moved.rename(base)
    assert classify(Predictor(run), ["a joy"])[0]["probability"] == pytest.approx(expected, abs=1e-6)
    (run / "adapter_model.safetensors").unlink()  # the trained adapter deleted: not a hub lookup by the folder's name
    with pytest.raises(UserError, match="has no adapter_model.safetensors \\(its trained weights\\)"):
        Predictor(run)


# ---- predict: what the user has is kept, and nothing is written through a link


def test_predict_keeps_every_input_column_and_names_its_own_apart(classifier_run, tmp_path, capsys):
    from common.serve.predict import main

    frame = pd.DataFrame({"review": ["a joy", "a mess"], "label": ["mine-1", "mine-2"], "probability": [0.1, 0.2]})
    frame.to_csv(tmp_path / "labelled.csv", index=False)
    main([str(classifier_run), "--input", str(tmp_path / "labelled.csv"), "--output", str(tmp_path / "p.csv")])
    out = pd.read_csv(tmp_path / "p.csv")
    assert out["label"].tolist() == ["mine-1", "mine-2"] and out["probability"].tolist() == [0.1, 0.2]
    assert set(out["predicted_label"]) <= {"neg", "pos"} and out["predicted_probability"].between(0.5, 1).all()
    assert "predictions are in predicted_label, predicted_probability" in capsys.readouterr().err
    # a line ends at \n only: a form feed, \x1c or U+2028 inside a line is part of it
    (tmp_path / "odd.txt").write_text("a joy\x0cstill one\na mess\x1cstill one\u2028still\r\nthird\n")
    main([str(classifier_run), "--input", str(tmp_path / "odd.txt"), "--output", str(tmp_path / "odd.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "odd.jsonl").read_text().strip().split("\n")]
    assert [r["review"] for r in rows] == ["a joy\x0cstill one", "a mess\x1cstill one\u2028still", "third"]


def test_predict_writes_its_output_whole_and_never_through_a_planted_link(tmp_path, monkeypatch):
    from common.serve.predict import check_output_file, write_outputs

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".p.csv.partial").symlink_to(victim)  # where an earlier version wrote its temporary file
    (tmp_path / "p.csv").symlink_to(victim)  # the output's own name, a link: replaced with --overwrite, not followed
    write_outputs(pd.DataFrame({"text": ["a"], "label": ["pos"]}), str(tmp_path / "p.csv"))
    assert victim.read_text() == "keep me" and not (tmp_path / "p.csv").is_symlink()
    assert pd.read_csv(tmp_path / "p.csv")["label"].tolist() == ["pos"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".p.csv.partial", "p.csv", "victim.txt"]
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(UserError, match="--output '.*folder.csv' is a folder; give a file name"):
        check_output_file(str(tmp_path / "folder.csv"), overwrite=True)
    monkeypatch.setattr("common.serve.predict.os.access", lambda path, mode: False)  # tests run as root
    with pytest.raises(UserError, match="cannot write to the folder .*; choose a folder you can write to"):
        check_output_file(str(tmp_path / "new.csv"), overwrite=False)


def test_predict_on_a_gpt2_run_cuts_long_prompts_and_treats_a_vanishing_temperature_as_greedy(tiny_gpt2, tmp_path):
    from common.tasks.causal_lm import TASK

    run = train_generator(tiny_gpt2, tmp_path)  # GPT-2's positions are learned: 128 here, and no more
    predictor = Predictor(run)
    frame = pd.DataFrame({"text": ["line 3", "line " * 400]})
    with pytest.raises(UserError, match="--max-new-tokens 128: this model reads at most 128 tokens"):
        TASK.predict(predictor, frame.copy(), ["text"], max_new_tokens=128, temperature=0.0, seed=1)
    greedy = TASK.predict(predictor, frame.copy(), ["text"], max_new_tokens=20, temperature=0.0, seed=1)
    tiny = TASK.predict(predictor, frame.copy(), ["text"], max_new_tokens=20, temperature=1e-300, seed=1)
    assert greedy["generation"].tolist() == tiny["generation"].tolist() and len(greedy) == 2


def test_empty_generations_are_explained_by_whether_the_model_has_a_chat_template(tiny_llama, gpt2_tokenizer):
    from common.model import load_tokenizer
    from common.tasks.causal_lm import empty_generations

    instruct = empty_generations(2, 3, load_tokenizer(str(tiny_llama)))  # SmolLM2-Instruct's tokenizer
    assert instruct.startswith("2 of 3 generations are empty: the model ended the text at once ('<|im_end|>')")
    assert "chat template: a plain question is text to continue" in instruct and "recipes/chat_sft.py" in instruct
    assert "--temperature 0.7" in empty_generations(1, 1, gpt2_tokenizer)
