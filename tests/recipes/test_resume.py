"""Crash and resume: a run killed (SIGKILL) or stopped (SIGTERM) after a checkpoint, resumed, ends exactly like an
uninterrupted one. SIGTERM also ends with one line, exit status 143, and no scratch folder left behind."""

import json
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from common.train.checkpoints import last_complete_checkpoint
from tests.conftest import ROOT, run_recipe

WORDS = "good bad fine dull warm cold bright dark sharp flat quick slow".split()


@pytest.fixture()
def reviews_400(tmp_path):
    rng = random.Random(0)
    rows = [
        (" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + f" {i}", "pos" if i % 2 else "neg") for i in range(400)
    ]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def flags(tiny_gpt2, csv, out):
    # 320 training rows / batch 4 = 80 steps an epoch, 160 in all; a checkpoint every 10 steps
    return [
        "--model",
        tiny_gpt2,
        "--train-file",
        csv,
        "--output-dir",
        out,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--freeze-layers",
        "0",
        "--precision",
        "fp32",
        "--logging-steps",
        "1",
        "--save-steps",
        "10",
        "--max-length",
        "16",
        "--lr",
        "1e-3",
    ]


def final_state(out):
    history = json.loads((out / "log_history.json").read_text())
    losses = [h for h in history if "loss" in h]
    return losses[-1]["step"], losses[-1]["loss"], json.loads((out / "metrics.json").read_text())["test_loss"]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_same_steps_and_loss(stop, tiny_gpt2, reviews_400, tmp_path):
    reference = tmp_path / "reference"
    assert run_recipe("gpt2_sentiment", *flags(tiny_gpt2, reviews_400, reference)).returncode == 0

    killed = tmp_path / "killed"
    scratch = tmp_path / "tmp"  # the run's TMPDIR: Trainer's scratch folder goes there
    scratch.mkdir()
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "recipes" / "gpt2_sentiment.py"), *map(str, flags(tiny_gpt2, reviews_400, killed))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    kill_after = random.Random().choice([90, 100, 110, 120])  # a random checkpoint in the second epoch
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = last_complete_checkpoint(killed / "checkpoints")
        if found and int(found.name.split("-")[1]) >= kill_after:
            time.sleep(random.Random().uniform(0, 0.05))  # somewhere in the steps after it
            proc.send_signal(stop)
            break
        time.sleep(0.005)
    stderr = proc.communicate()[1]
    if stop == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    else:
        assert proc.returncode == 143, stderr[-2000:]
        assert stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM; --output-dir is as it was")
        assert "Traceback" not in stderr
        left = [p.name for p in scratch.glob("lm-recipes-*") if not p.name.startswith("lm-recipes-locks")]
        assert left == []  # the scratch folder was cleaned up
    assert not (killed / "metrics.json").exists()  # no final output from a killed run

    resumed = run_recipe("gpt2_sentiment", *flags(tiny_gpt2, reviews_400, killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    steps, loss, test_loss = final_state(killed)
    ref_steps, ref_loss, ref_test_loss = final_state(reference)
    assert steps == ref_steps == 160
    assert loss == pytest.approx(ref_loss, abs=1e-4)
    assert test_loss == pytest.approx(ref_test_loss, abs=1e-4)
    assert not (killed / "checkpoints").exists()  # the finished run replaced its checkpoints
