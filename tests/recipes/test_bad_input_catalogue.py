"""The bad-input catalogue: each case ends with one line (what is wrong, how to fix it), exit status 2, no
traceback and nothing written. Run in-process through common.run.command_line, the same path as `python recipes/x.py`
(test_bad_input.py runs a few of them as real subprocesses)."""

import errno
import json
import os
import re
import shutil

import pandas as pd
import pytest
import torch
import transformers
from safetensors.torch import save_file

from common.run import command_line, folders, from_argv
from common.train.checkpoints import mark_run
from recipes import bert_classification, causal_lm, gpt2_sentiment
from tests.conftest import cut_copy

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
    # data a hostile (or unlucky) user gives
    pd.DataFrame({"text": [f"row {i}" for i in range(100)], "label": [f"c{i // 2}" for i in range(100)]}).to_csv(
        tmp_path / "many_classes.csv", index=False
    )
    (tmp_path / "list_labels.jsonl").write_text(
        '{"text": "good", "label": "pos"}\n{"text": "bad", "label": ["neg", "meh"]}\n'
    )
    pd.DataFrame({"text": [["a", "b"], ["c"]] * 10, "label": ["pos", "neg"] * 10}).to_parquet(
        tmp_path / "lists.parquet"
    )
    (tmp_path / "array.jsonl").write_text(json.dumps([{"text": f"t{i}", "label": "pos"} for i in range(400)]))
    (tmp_path / "folder_data").mkdir()
    (tmp_path / "folder_data" / "a.txt").write_text("some text")
    (tmp_path / "nul.csv").write_bytes(b"\x00" * 100_000)
    (tmp_path / "nulcorpus.txt").write_bytes(b"text,label\n" + b"\x00" * 100_000)
    (tmp_path / "conf_dir").mkdir()
    (tmp_path / "help.yaml").write_text("help: true\n")
    (tmp_path / "space_nan.yaml").write_text("lr: {low: .nan, high: 1.0e-3}\n")
    (tmp_path / "space_zero_epochs.yaml").write_text("epochs: [0]\n")
    (tmp_path / "space_bad_range.yaml").write_text("lr: {low: 1e-3, high: 1e-5}\n")
    # settings files a careless or hostile user gives
    (tmp_path / "dup.yaml").write_text("lr: 1e-4\nepochs: 1\nlr: 5\n")
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefg", "bcdefgh")
    ]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\ntext_column: [" + ", ".join(["*h"] * 9) + "]\n")
    (tmp_path / "numkey.yaml").write_text("1: 2\n")
    (tmp_path / "nullkey.yaml").write_text("null: 2\n")
    (tmp_path / "list_lr.yaml").write_text("lr: [1e-4, 2e-4]\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "latin1_space.yaml").write_bytes(
        "# taux d'apprentissage \xe9lev\xe9\nlr: [1e-4, 2e-4]\n".encode("latin-1")
    )
    cut_copy(tiny_bert, tmp_path / "cut_model", parts=2)  # a copy cut short
    broken_config = tmp_path / "broken_config"
    shutil.copytree(tiny_bert, broken_config)
    (broken_config / "config.json").write_text('{"model_type": "bert", "hidden_size": 32,')
    unknown_type = tmp_path / "unknown_type"
    shutil.copytree(tiny_bert, unknown_type)
    config = json.loads((unknown_type / "config.json").read_text())
    (unknown_type / "config.json").write_text(json.dumps({**config, "model_type": "bert-2077"}))
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
        "many_classes.csv",
        "list_labels.jsonl",
        "lists.parquet",
        "array.jsonl",
        "folder_data",
        "nul.csv",
        "nulcorpus.txt",
        "conf_dir",
        "help.yaml",
        "space_nan.yaml",
        "space_zero_epochs.yaml",
        "space_bad_range.yaml",
        "cut_model",
        "broken_config",
        "unknown_type",
        "dup.yaml",
        "bomb.yaml",
        "numkey.yaml",
        "nullkey.yaml",
        "list_lr.yaml",
        "fifo.yaml",
        "latin1_space.yaml",
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
    # numbers that parse but mean nothing
    ("learning rate nan", "bert", ["--lr", "nan"], "--lr: must be a finite number"),
    ("epochs nan", "bert", ["--epochs", "nan"], "--epochs: must be a finite number"),
    ("epochs inf", "bert", ["--epochs", "inf"], "--epochs: must be a finite number"),
    ("warmup nan", "bert", ["--warmup", "nan"], "--warmup: must be a finite number"),
    ("negative seed", "bert", ["--seed=-1"], "--seed: must be 0 or more"),
    ("class weight nan", "bert", ["--class-weights", "nan,1"], "--class-weights"),
    ("label smoothing nan", "bert", ["--label-smoothing", "nan"], "--label-smoothing: must be a finite number"),
    ("weight decay nan", "bert", ["--weight-decay", "nan"], "--weight-decay: must be a finite number"),
    ("LoRA dropout above 1", "gpt2", ["--lora-dropout", "5"], "--lora-dropout: must be in [0, 1)"),
    ("max length of one token", "bert", ["--max-length", "1"], "--max-length: must be at least 8 tokens"),
    ("block size of four tokens", "causal", ["--block-size", "4"], "--block-size: must be at least 8 tokens"),
    ("best metric typo (not after an epoch)", "bert", ["--best-metric", "acuracy"], "invalid choice: 'acuracy'"),
    ("abbreviated flag", "bert", ["--batch", "8"], "unrecognized arguments: --batch"),
    ("zero LoRA rank", "gpt2", ["--lora-r", "0"], "--lora-r: must be greater than 0"),
    ("zero LoRA alpha", "gpt2", ["--lora-alpha", "0"], "--lora-alpha: must be greater than 0"),
    ("zero eval steps", "bert", ["--eval-steps", "0"], "--eval-steps: must be greater than 0"),
    ("zero logging steps", "bert", ["--logging-steps", "0"], "--logging-steps: must be greater than 0"),
    ("zero save steps", "bert", ["--save-steps", "0"], "--save-steps: must be greater than 0"),
    ("zero stride", "bert", ["--stride", "0"], "--stride: must be greater than 0"),
    ("negative augment", "bert", ["--augment=-1"], "--augment: must be 0 or more"),
    ("negative warmup", "bert", ["--warmup=-1"], "--warmup: must be 0 or more"),
    ("focal gamma nan", "bert", ["--loss", "focal", "--focal-gamma", "nan"], "--focal-gamma: must be a finite number"),
    ("dropout above 1", "bert", ["--dropout", "1.5"], "--dropout: must be in [0, 1)"),
    ("zero layer-wise decay", "bert", ["--layer-lr-decay", "0"], "--layer-lr-decay: must be greater than 0"),
    ("zero training samples", "bert", ["--max-train-samples", "0"], "--max-train-samples: must be greater than 0"),
    ("negative freeze", "gpt2", ["--freeze-layers=-1"], "--freeze-layers: must be 0 or more"),
    ("negative explain", "bert", ["--explain=-1"], "--explain: must be 0 or more"),
    ("zero new tokens", "causal", ["--max-new-tokens", "0"], "--max-new-tokens: must be greater than 0"),
    ("seed beyond 2**32", "bert", ["--seed", "99999999999"], "--seed: must be below 2**32"),
    ("epochs in words", "bert", ["--epochs", "three"], "--epochs: expected a number, got 'three'"),
    ("class weights in words (before any work)", "bert", ["--class-weights", "a,b"], "takes 'auto' or numbers"),
    ("class weight of zero", "bert", ["--class-weights", "0,1"], "each weight must be greater than 0"),
    ("fp16 without a GPU (before any work)", "bert", ["--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    ("unknown scheduler", "bert", ["--scheduler", "warm"], "invalid choice: 'warm'"),
    ("unknown long-text mode", "bert", ["--long-text", "cut"], "invalid choice: 'cut'"),
    ("unknown packing", "causal", ["--packing", "none"], "invalid choice: 'none'"),
    ("a classifier's metric for a causal LM", "causal", ["--best-metric", "accuracy"], "invalid choice: 'accuracy'"),
    ("gradual unfreezing in words", "gpt2", ["--gradual-unfreeze", "sometimes"], "expected a whole number"),
    (
        "an HF spelling that means something else here",
        "bert",
        ["--per_device_train_batch_size", "8"],
        "--per_device_train_batch_size: use --batch-size",
    ),
    (
        "early stopping with save steps",
        "bert",
        ["--early-stopping-patience", "2", "--save-steps", "10"],
        "--eval-steps",
    ),
    ("one fold", "bert", ["--kfold", "1"], "--kfold needs at least 2 folds"),
    ("k-fold with early stopping", "bert", ["--kfold", "3", "--early-stopping-patience", "2"], "drop --early-stopping"),
    ("search without a space", "bert", ["--search", "grid"], "--search needs --search-space FILE"),
    ("search space that does not exist", "bert", ["--search", "random", "--search-space", "no.yaml"], "does not exist"),
    ("--resume from a folder that is no checkpoint", "bert", ["--resume", "/nonexistent"], "not a complete checkpoint"),
    ("a test file without a train file", "bert", ["--test-file", "a.csv"], "need a --train-file too"),
    # data
    (
        "50 classes of 2 rows",
        "bert",
        ["--train-file", "{many_classes}"],
        "50 classes in only 100 training rows: a held-out validation/test split of 10 rows cannot hold every class",
    ),
    ("list-valued labels", "bert", ["--train-file", "{list_labels}"], "column 'label' of the train data holds a list"),
    ("list-valued texts", "bert", ["--train-file", "{lists}"], "column 'text' of the train data holds a"),
    ("a JSON array named .jsonl", "bert", ["--train-file", "{array}"], "holds one JSON array, not JSON lines"),
    ("a folder for a classifier", "bert", ["--train-file", "{folder_data}"], "is a folder; give one table file"),
    (
        "the label column as the text column",
        "bert",
        ["--text-column", "label", "--label-column", "label"],
        "--label-column 'label' is also a --text-column",
    ),
    ("a file of NUL bytes", "bert", ["--train-file", "{nul}"], "is binary (it holds NUL bytes), not csv text"),
    ("a corpus of NUL bytes", "causal", ["--train-file", "{nulcorpus}"], "is binary (it holds NUL bytes)"),
    # models
    (
        "weights cut short",
        "bert",
        ["--train-file", "{reviews}", "--model", "{cut_model}"],
        "model.safetensors is ",
    ),
    (
        "config.json that is not JSON",
        "bert",
        ["--train-file", "{reviews}", "--model", "{broken_config}"],
        "config.json' is not valid JSON",
    ),
    (
        "config.json with an unknown model_type",
        "bert",
        ["--train-file", "{reviews}", "--model", "{unknown_type}"],
        "names model_type 'bert-2077', which transformers",
    ),
    # config and search-space files
    ("--config naming a folder", "bert", ["--config", "{conf_dir}"], "is a folder; give a .yaml or .json file"),
    ("help in a config file", "bert", ["--config", "{help}"], "has unknown keys: help"),
    (
        "search range with nan",
        "bert",
        ["--train-file", "{reviews}", "--search", "random", "--search-space", "{space_nan}"],
        "'lr' needs {low: A, high: B} with numbers A < B",
    ),
    (
        "search values that are not a valid run",
        "bert",
        ["--train-file", "{reviews}", "--search", "grid", "--search-space", "{space_zero_epochs}"],
        "space_zero_epochs.yaml': epochs: 0: --epochs must be greater than 0",
    ),
    (
        "search range upside down",
        "bert",
        ["--train-file", "{reviews}", "--search", "random", "--search-space", "{space_bad_range}"],
        "with numbers A < B",
    ),
]


CATALOGUE += [
    # settings files: read as a user's file, never trusted (round 3)
    (
        "a text column named labels",
        "bert",
        ["--train-file", "{reviews}", "--text-column", "labels", "--label-column", "label"],
        "'labels' is the name the recipes give the encoded label column",
    ),
    # weights gone NaN after the last logged loss: the evaluation says so (it was a ValueError in ROC-AUC)
    ("--lr past any sense", "bert", ["--train-file", "{reviews}", "--lr", "1e308"], "lower --lr"),
    (
        "k-fold with a model folder that is not a model",
        "bert",
        ["--train-file", "{reviews}", "--kfold", "2", "--model", "{notamodel}"],
        "is a folder without config.json",
    ),
    ("--augment without bound", "bert", ["--train-file", "{reviews}", "--augment", "100000000"], "must be at most 32"),
    ("config key given twice", "bert", ["--config", "{dup}"], "the key 'lr' is given twice (line 3)"),
    ("config alias bomb", "bert", ["--config", "{bomb}"], "expands to over 100000 values (nested aliases"),
    ("config key a number", "bert", ["--config", "{numkey}"], "the key 1 is not a name"),
    ("config key null", "bert", ["--config", "{nullkey}"], "the key None is not a name"),
    ("config list for one value", "bert", ["--config", "{list_lr}"], "lr takes one value, not a list"),
    ("config /dev/zero", "bert", ["--config", "/dev/zero"], "is not a regular file (a pipe or a device)"),
    ("config a named pipe", "bert", ["--config", "{fifo}"], "is not a regular file (a pipe or a device)"),
    (
        "search space a folder",
        "bert",
        ["--train-file", "{reviews}", "--search", "random", "--search-space", "{conf_dir}"],
        "conf_dir' is a folder; give a .yaml or .json file of flags",
    ),
    (
        "search space not UTF-8",
        "bert",
        ["--train-file", "{reviews}", "--search", "random", "--search-space", "{latin1_space}"],
        "is not valid UTF-8 (byte 23); re-save it as UTF-8",
    ),
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


def test_catalogue_has_at_least_100_distinct_cases_and_the_docs_say_how_many():
    from tests.conftest import ROOT

    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE) >= 100
    readme = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    said = re.findall(r"The (\d+) cases\s+that are tested|catalogue of (\d+) cases|with the (\d+) cases where", readme)
    numbers = sorted({int(n) for match in said for n in match if n})
    assert numbers == sorted({len(CATALOGUE), len(DATA_LOSS)}) and len(said) == 3, said


def test_unwritable_output_folder(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(folders.os, "access", lambda path, mode: False)  # tests run as root, who may write anywhere
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
    # checked when logged (a check each step would stall a GPU): it names the steps since the last finite loss;
    # this 5-step run logs every step (an unset --logging-steps is fitted to the run's length)
    assert re.search(r"became (nan|inf|-inf) at step [1-5];", err) and "lower --lr" in err
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


# ---- data loss: what the user has is still there, byte for byte, whatever the flags


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def users_folder(tmp_path):
    mine = tmp_path / "thesis"
    (mine / "figures").mkdir(parents=True)
    (mine / "chapter1.tex").write_text("years of work")
    (mine / "figures" / "plot.png").write_bytes(bytes(range(256)))
    return mine


def git_checkout(tmp_path):
    repo = users_folder(tmp_path)
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".lm-recipes-run").write_text("{}")  # even marked as a run: a checkout is never replaced
    return repo


def interrupted_run(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    save_file({"w": torch.arange(1000.0)}, run / "checkpoints" / "checkpoint-10" / "model.safetensors")
    torch.save({"state": {}}, run / "checkpoints" / "checkpoint-10" / "optimizer.pt")
    (run / "checkpoints" / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 10}')
    (run / "checkpoints" / "checkpoint-10" / "COMPLETE").write_text("step 10\n")
    return run


def unmarked_run_names(tmp_path):
    folder = users_folder(tmp_path)  # the user's files beside two named like a run's (or an old version's run)
    (folder / "run_config.json").write_text("{}")
    (folder / "metrics.json").write_text("{}")
    return folder


def run_with_a_link(tmp_path):
    shared = tmp_path / "shared_logs"  # other experiments' TensorBoard logs
    shared.mkdir()
    (shared / "events.out.tfevents.1.other").write_text("another experiment")
    run = tmp_path / "run"
    mark_run(run, ["metrics.json"])
    (run / "metrics.json").write_text("{}")
    (run / "tensorboard").symlink_to(shared)
    return run


def a_run(tmp_path):
    run = tmp_path / "run"
    mark_run(run, ["metrics.json"])
    (run / "metrics.json").write_text('{"test_accuracy": 0.9}')
    (tmp_path / "smuggle.yaml").write_text("text_column: [text, --overwrite]\n")
    return run


DATA_LOSS = [
    # (id, the folder the user has, flags, the line must contain)
    (
        "--overwrite on files named like a run's, without our marker",
        unmarked_run_names,
        ["--overwrite"],
        "holds run_config.json but no .lm-recipes-run marker",
    ),
    (
        "--overwrite on a run folder holding a symbolic link",
        run_with_a_link,
        ["--overwrite", "--report-to", "tensorboard"],
        "holds a symbolic link (tensorboard -> ",
    ),
    (
        "--resume on a run folder holding a symbolic link",
        run_with_a_link,
        ["--resume", "--report-to", "tensorboard"],
        "holds a symbolic link (tensorboard -> ",
    ),
    (
        "a --config value that is a flag (--overwrite)",
        a_run,
        ["--config", "{tmp}/smuggle.yaml"],
        "text_column: the value '--overwrite' starts with '-'; a file gives values, not flags",
    ),
    ("--overwrite on the user's own folder", users_folder, ["--overwrite"], "holds files that no run of lm-recipes"),
    ("--resume on the user's own folder", users_folder, ["--resume"], "holds files that no run of lm-recipes"),
    ("--overwrite on a git checkout", git_checkout, ["--overwrite"], "holds a git repository"),
    (
        "--overwrite with a typo in --train-file keeps the checkpoints",
        interrupted_run,
        ["--overwrite", "--train-file", "typo.csv"],
        "'typo.csv' does not exist",
    ),
    (
        "--resume with a typo in --train-file keeps the checkpoints",
        interrupted_run,
        ["--resume", "--train-file", "typo.csv"],
        "'typo.csv' does not exist",
    ),
]


@pytest.mark.parametrize("case, make, flags, expected", DATA_LOSS, ids=[c[0] for c in DATA_LOSS])
def test_users_files_survive(case, make, flags, expected, tmp_path, capsys):
    folder = make(tmp_path)
    before = snapshot(tmp_path)
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    code, err = run_in_process("bert", ["--output-dir", str(folder), *flags], capsys)
    assert_one_clear_line(code, err, expected)
    assert snapshot(tmp_path) == before


def test_the_current_folder_and_a_symlink_are_never_replaced(tmp_path, capsys, monkeypatch):
    mine = users_folder(tmp_path)
    before = snapshot(mine)
    monkeypatch.chdir(mine)
    code, err = run_in_process("bert", ["--output-dir", ".", "--overwrite"], capsys)
    assert_one_clear_line(code, err, "is the root, your home or the current folder")
    assert "--overwrite" not in err.splitlines()[-1].split("so it is never replaced")[1]  # no bad advice
    (tmp_path / "link").symlink_to(mine)
    code, err = run_in_process("bert", ["--output-dir", str(tmp_path / "link"), "--overwrite"], capsys)
    assert_one_clear_line(code, err, "is a symbolic link")
    assert snapshot(mine) == before


def test_a_second_run_into_a_folder_in_use_refuses_at_once(files, tmp_path, capsys):
    out = tmp_path / "out"
    with folders.output_lock(out):  # what a run holds from start to end
        code, err = run_in_process("bert", ["--train-file", files["reviews"], "--output-dir", str(out)], capsys)
    assert_one_clear_line(code, err, "is in use by a run that has not ended")
    assert not out.exists()


# ---- --resume continues the run as it was started, from a checkpoint that is whole


def test_resume_refuses_other_settings_and_damaged_checkpoints_before_any_work(files, tmp_path, capsys):
    from common.config import parse

    out = tmp_path / "run"
    argv = [*TINY, "--train-file", files["reviews"], "--model", files["tiny_bert"], "--output-dir", str(out)]
    started = parse(bert_classification.DEFAULTS, [*argv, "--save-steps", "5"])
    checkpoint = out / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.ones(8)}, checkpoint / "model.safetensors")
    (checkpoint / "run_config.json").write_text(json.dumps(started.flat()))
    torch.save({"state": {}}, checkpoint / "optimizer.pt")
    (checkpoint / "trainer_state.json").write_text('{"global_step": 5}')
    (checkpoint / "COMPLETE").write_text("step 5\n")
    before = snapshot(out)
    for changed, expected in [
        (["--batch-size", "8"], "--batch-size 8 (was 4)"),
        (["--lr", "5e-3"], "--lr 0.005 (was 0.0001)"),
        (["--model", files["tiny_gpt2"]], "--model "),
    ]:
        code, err = run_in_process("bert", [*argv, "--save-steps", "5", "--resume", *changed], capsys)
        assert_one_clear_line(code, err, expected)
        assert "differ from its checkpoint" in err
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # damaged after it was written
    code, err = run_in_process("bert", [*argv, "--save-steps", "5", "--resume"], capsys)
    assert_one_clear_line(code, err, "is damaged")
    assert snapshot(out).keys() == before.keys()
