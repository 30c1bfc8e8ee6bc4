"""The bad-input catalogue: each case ends with one line (what is wrong, how to fix it), exit status 2, no
traceback and nothing written. Run in-process through common.run.command_line, the same path as `python recipes/x.py`
(test_bad_input.py runs a few of them as real subprocesses)."""

import errno
import json
import shutil

import pytest
import torch
import transformers

from common.run import command_line, from_argv
from common.run import output as outputs
from recipes import bert_classification, causal_lm, gpt2_sentiment

RECIPES = {"bert": bert_classification, "gpt2": gpt2_sentiment, "causal": causal_lm}
TINY = ["--epochs", "1", "--batch-size", "4", "--max-length", "32", "--precision", "fp32"]


@pytest.fixture()
def files(tmp_path, reviews_frame, tiny_bert, tiny_gpt2, tiny_llama, gpt2_tokenizer):
    reviews_frame.to_csv(tmp_path / "reviews.csv", index=False)
    (tmp_path / "zero.csv").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    (tmp_path / "x.xlsx").write_text("not a table")
    reviews_frame.assign(label="pos").to_csv(tmp_path / "one.csv", index=False)
    reviews_frame.head(6).assign(label=["pos", "neg", "meh", "pos", "neg", "pos"]).to_csv(
        tmp_path / "unseen.csv", index=False
    )
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1"))
    (tmp_path / "quote.csv").write_text('text,label\n"an unclosed quote,pos\nfine,neg\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": "pos"}\n{"text": broken\n')
    (tmp_path / "corpus.txt").write_text("a very short corpus")
    (tmp_path / "notamodel").mkdir()
    mismatch = tmp_path / "mismatch"  # a BERT model saved with GPT-2's tokenizer
    shutil.copytree(tiny_bert, mismatch)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (mismatch / name).unlink(missing_ok=True)
    gpt2_tokenizer.save_pretrained(mismatch)
    pickled = tmp_path / "pickled"  # weights only as pickle, as old checkpoints have them
    shutil.copytree(tiny_gpt2, pickled)
    torch.save(transformers.AutoModelForCausalLM.from_pretrained(tiny_gpt2).state_dict(), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    (tmp_path / "unknown.yaml").write_text("lr: 1e-4\nlearning_rate: 1e-4\nepoch: 3\n")
    (tmp_path / "out_is_file").write_text("x")
    names = [
        "reviews.csv",
        "zero.csv",
        "header.csv",
        "x.xlsx",
        "one.csv",
        "unseen.csv",
        "latin1.csv",
        "quote.csv",
        "bad.jsonl",
        "corpus.txt",
        "notamodel",
        "mismatch",
        "pickled",
        "unknown.yaml",
        "out_is_file",
    ]
    return {n.split(".")[0]: str(tmp_path / n) for n in names} | {
        "tiny_bert": str(tiny_bert),
        "tiny_gpt2": str(tiny_gpt2),
        "tiny_llama": str(tiny_llama),
    }


CATALOGUE = [
    # (id, recipe, flags, the line must contain)
    ("missing file", "bert", ["--train-file", "missing.csv"], "'missing.csv' does not exist; check the path"),
    ("unsupported extension", "bert", ["--train-file", "{x}"], "unsupported extension '.xlsx'; use one of"),
    ("empty file", "bert", ["--train-file", "{zero}"], "is empty; it needs a header row"),
    ("no rows after cleaning", "bert", ["--train-file", "{header}"], "no rows left after cleaning"),
    (
        "text column missing",
        "bert",
        ["--train-file", "{reviews}", "--text-column", "review"],
        "column 'review' is not in the train data",
    ),
    (
        "label column missing",
        "bert",
        ["--train-file", "{reviews}", "--label-column", "stars"],
        "column 'stars' is not in the train data",
    ),
    ("one class only", "bert", ["--train-file", "{one}"], "has only one class ('pos')"),
    (
        "test label unseen in training",
        "bert",
        ["--train-file", "{reviews}", "--test-file", "{unseen}"],
        "the test data has labels not seen in training: meh",
    ),
    (
        "training rows all in the test data",
        "bert",
        ["--train-file", "{reviews}", "--validation-file", "{reviews}"],
        "every training row also appears in the validation/test data",
    ),
    ("non-UTF-8 bytes", "bert", ["--train-file", "{latin1}"], "is not valid UTF-8"),
    ("malformed csv", "bert", ["--train-file", "{quote}"], "could not be read as csv"),
    ("malformed json lines", "bert", ["--train-file", "{bad}"], "could not be read as jsonl"),
    (
        "model that does not exist (offline)",
        "gpt2",
        ["--train-file", "{reviews}", "--model", "no-such-model-xyz"],
        "could not load model 'no-such-model-xyz'",
    ),
    (
        "folder that is not a model",
        "gpt2",
        ["--train-file", "{reviews}", "--model", "{notamodel}"],
        "is a folder without config.json",
    ),
    (
        "tokenizer from another model",
        "bert",
        ["--train-file", "{reviews}", "--model", "{mismatch}"],
        "they do not belong together",
    ),
    (
        "pickle-only weights",
        "gpt2",
        ["--train-file", "{reviews}", "--model", "{pickled}", "--freeze-layers", "0"],
        "pass --allow-pickle if you trust",
    ),
    (
        "block size larger than the corpus",
        "causal",
        ["--train-file", "{corpus}", "--model", "{tiny_llama}", "--block-size", "64"],
        "fewer than one block of 64",
    ),
    (
        "block size beyond the model's positions",
        "causal",
        ["--train-file", "{corpus}", "--model", "{tiny_llama}", "--block-size", "100000"],
        "beyond what the model can see (256 positions)",
    ),
    (
        "max length beyond the model's positions",
        "bert",
        ["--train-file", "{reviews}", "--model", "{tiny_bert}", "--max-length", "4096"],
        "beyond what the model can see (128 positions)",
    ),
    ("zero epochs", "bert", ["--epochs", "0"], "--epochs: must be greater than 0"),
    ("negative learning rate", "bert", ["--lr=-1e-4"], "--lr: must be greater than 0"),
    ("zero batch size", "bert", ["--batch-size", "0"], "--batch-size: must be greater than 0"),
    ("three text columns", "bert", ["--text-column", "a", "b", "c"], "--text-column takes one column, or two"),
    (
        "LoRA with gradual unfreezing",
        "gpt2",
        ["--lora-r", "8", "--gradual-unfreeze", "10"],
        "--lora-r trains adapters, not layers",
    ),
    ("--resume with --overwrite", "bert", ["--resume", "--overwrite"], "pass only one"),
    (
        "more frozen layers than blocks",
        "gpt2",
        ["--train-file", "{reviews}", "--model", "{tiny_gpt2}", "--freeze-layers", "5"],
        "more than the model's 2 blocks",
    ),
    (
        "class weights of the wrong length",
        "bert",
        ["--train-file", "{reviews}", "--model", "{tiny_bert}", "--class-weights", "1,2,3"],
        "needs 2 positive numbers",
    ),
    ("config file with unknown keys", "bert", ["--config", "{unknown}"], "has unknown keys: epoch, learning_rate"),
    ("config file that does not exist", "bert", ["--config", "nope.yaml"], "--config 'nope.yaml' does not exist"),
    ("--resume with no checkpoint", "bert", ["--resume"], "--resume: no complete checkpoint in"),
    ("output folder is a file", "bert", ["--output-dir", "{out_is_file}"], "is a file, not a folder"),
    ("unknown embedded dataset", "bert", ["--dataset", "embedded:nope"], "embedded:nope"),
]


def run_in_process(recipe, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        command_line(RECIPES[recipe].main, RECIPES[recipe].DEFAULTS, argv)
    return exit_info.value.code, capsys.readouterr().err


def assert_one_clear_line(code, err, expected):
    lines = [
        line for line in err.splitlines() if line.strip() and not line.startswith(("Loading weights", "Writing model"))
    ]
    assert code == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: ") and expected in lines[-1], err
    assert sum(line.startswith("error: ") for line in lines) == 1


@pytest.mark.parametrize("case, recipe, flags, expected", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input(case, recipe, flags, expected, files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [f.format(**files) for f in flags]
    if "--output-dir" not in argv:
        argv += ["--output-dir", str(out)]
    if "--train-file" in argv and recipe != "causal":
        argv = TINY + argv  # a small budget first, so the case's own flags win
    code, err = run_in_process(recipe, argv, capsys)
    assert_one_clear_line(code, err, expected)
    assert not out.exists()  # nothing written


def test_catalogue_has_at_least_25_distinct_cases():
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE) >= 25


def test_unwritable_output_folder(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)  # tests run as root, who may write anywhere
    code, err = run_in_process(
        "bert", ["--train-file", files["reviews"], "--output-dir", str(tmp_path / "out")], capsys
    )
    assert_one_clear_line(code, err, "choose a folder you can write to")


def test_full_disk_while_saving(files, tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full_disk)
    out = tmp_path / "out"
    code, err = run_in_process(
        "gpt2",
        [
            "--train-file",
            files["reviews"],
            "--model",
            files["tiny_gpt2"],
            "--freeze-layers",
            "0",
            "--output-dir",
            str(out),
            *TINY,
        ],
        capsys,
    )
    assert_one_clear_line(code, err, "the disk is full")
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_loss_that_becomes_nan_stops_naming_the_step(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_in_process(
        "gpt2",
        [
            "--train-file",
            files["reviews"],
            "--model",
            files["tiny_gpt2"],
            "--freeze-layers",
            "0",
            "--lr",
            "1e30",
            "--output-dir",
            str(out),
            *TINY,
        ],
        capsys,
    )
    assert_one_clear_line(code, err, "the training loss became")
    assert "at step " in err and "lower --lr" in err
    assert not out.exists()


def test_a_saved_run_config_repeats_the_run(files, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--train-file",
            files["reviews"],
            "--model",
            files["tiny_gpt2"],
            "--freeze-layers",
            "1",
            "--output-dir",
            str(first),
            *TINY,
        ],
    )
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        ["--config", str(first / "run_config.json"), "--output-dir", str(second)],
    )
    one, two = (json.loads((d / "metrics.json").read_text()) for d in (first, second))
    assert one["test_loss"] == two["test_loss"] and one["test_accuracy"] == two["test_accuracy"]
    assert json.loads((second / "run_config.json").read_text())["freeze_layers"] == 1
