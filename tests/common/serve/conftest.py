"""Runs to predict with and serve (trained once per module on tiny models), and a real server on a loopback port."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from common.run import from_argv
from recipes import causal_lm, gpt2_sentiment
from tests.conftest import TINY_DECODER_RUN

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def classifier_run(tiny_gpt2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    rows = pd.DataFrame(
        {
            "review": [f"a joy {i}" for i in range(12)] + [f"a mess {i}" for i in range(12)],
            "label": ["pos"] * 12 + ["neg"] * 12,
        }
    )
    rows.to_csv(folder / "reviews.csv", index=False)
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--model",
            str(tiny_gpt2),
            "--train-file",
            str(folder / "reviews.csv"),
            "--text-column",
            "review",
            "--output-dir",
            str(folder / "run"),
            *TINY_DECODER_RUN,
        ],
    )
    return folder / "run"


def train_generator(model, folder: Path) -> Path:
    """A causal-LM run of `model` on a small corpus, a few steps long; returns its output folder."""
    (folder / "corpus.txt").write_text("\n".join(f"line {i} of a small text" for i in range(200)))
    words = ["--model", str(model), "--train-file", str(folder / "corpus.txt"), "--output-dir", str(folder / "run")]
    words += ["--block-size", "32", "--batch-size", "4", "--epochs", "1", "--precision", "fp32"]
    from_argv(causal_lm.main, causal_lm.DEFAULTS, [*words, "--max-train-samples", "8", "--prompt", ""])
    return folder / "run"


@pytest.fixture(scope="module")
def generator_run(tiny_llama, tmp_path_factory):
    return train_generator(tiny_llama, tmp_path_factory.mktemp("generator"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port: int):
    """call(method, path, body=None, raw=None, headers=None) -> (status, JSON answer) against the server on `port`."""

    def call(method, path, body=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    return call


@contextlib.contextmanager
def serving(run_folder, *flags, env=None):
    """`python -m common.serve RUN FLAGS` on a free loopback port until the block ends; yields (call, port)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "common.serve", str(run_folder), "--port", str(port), *map(str, flags)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    call = client(port)
    deadline = time.time() + 120
    while True:
        try:
            if call("GET", "/health")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        assert process.poll() is None and time.time() < deadline, process.stdout.read().decode()[-2000:]
        time.sleep(0.5)
    try:
        yield call, port
    finally:
        process.terminate()
        process.wait(timeout=30)
