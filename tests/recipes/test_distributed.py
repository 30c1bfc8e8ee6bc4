"""Two processes (torchrun, accelerate launch) train like one process with the same global batch: on two GPUs
where the machine has them (NCCL), else on the CPU (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from common.errors import UserError
from common.train import training_arguments
from tests.conftest import NEGATIVE, POSITIVE, classification_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    """64 training rows: a multiple of the global batch, so no process pads its last batch with repeated rows."""
    folder = tmp_path_factory.mktemp("splits")
    rows = pd.DataFrame(
        {
            "text": [f"{t} {i}" for i, t in enumerate((POSITIVE + NEGATIVE) * 4)],
            "label": (["pos"] * 12 + ["neg"] * 12) * 4,
        }
    ).sample(frac=1, random_state=0)
    files = {}
    for split, part in {"train": rows[:64], "validation": rows[64:80], "test": rows[80:]}.items():
        files[split] = folder / f"{split}.csv"
        part.to_csv(files[split], index=False)
    return files


def recipe_args(tiny_bert, files, out):
    # dropout 0 and fp32: what is left to differ is the order of float additions in the gradient all-reduce
    return [
        "recipes/bert_classification.py",
        "--model",
        str(tiny_bert),
        "--train-file",
        str(files["train"]),
        "--validation-file",
        str(files["validation"]),
        "--test-file",
        str(files["test"]),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--precision",
        "fp32",
        "--dropout",
        "0",
        "--logging-steps",
        "1",
        "--output-dir",
        str(out),
    ]


def launch(launcher: list[str], args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if torch.cuda.device_count() < 2:  # one GPU per rank, or none: two ranks on one GPU is a NCCL error
        env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run([*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def one_process(tiny_bert, split_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    launch([sys.executable], recipe_args(tiny_bert, split_files, out))
    return out


def losses(out: Path) -> list[float]:
    return [entry["loss"] for entry in json.loads((out / "log_history.json").read_text()) if "loss" in entry]


@pytest.mark.parametrize(
    "launcher",
    [
        [str(BIN / "torchrun"), "--nproc_per_node", "2"],
        [str(BIN / "accelerate"), "launch", "--config_file", "configs/accelerate/ddp.yaml"],
    ],
    ids=["torchrun", "accelerate"],
)
def test_two_processes_match_one_process_with_the_same_global_batch(
    launcher, one_process, tiny_bert, split_files, tmp_path
):
    out = tmp_path / "out"
    result = launch(launcher, recipe_args(tiny_bert, split_files, out))
    assert "2 processes, 4 examples each per step (global batch 8)" in result.stdout
    assert result.stdout.count("Test results") == 1  # only the first process reports
    one, two = (json.loads((o / "metrics.json").read_text()) for o in (one_process, out))
    assert two["test_loss"] == pytest.approx(one["test_loss"], abs=1e-5)
    assert two["test_accuracy"] == one["test_accuracy"]
    assert losses(out) == pytest.approx(losses(one_process), abs=1e-5)  # step by step: 16 steps, same batches
    assert len(losses(out)) == 16
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())


def test_two_nodes_on_loopback_match_one_process(one_process, tiny_bert, split_files, tmp_path):
    """Two "machines" of one process each (two torchrun --nnodes 2, rendezvous on 127.0.0.1, gloo), as on a
    cluster with a shared file system: the same losses as one process with the same global batch."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    nodes = [
        subprocess.Popen(
            [
                str(BIN / "torchrun"),
                "--nnodes",
                "2",
                "--nproc_per_node",
                "1",
                "--node_rank",
                str(rank),
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(port),
                *recipe_args(tiny_bert, split_files, out),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    results = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, results):
        assert node.returncode == 0, stderr[-3000:]
    assert "2 processes, 4 examples each per step (global batch 8)" in results[0][0]
    assert sum(stdout.count("Test results") for stdout, _ in results) == 1  # only global rank 0 reports
    assert losses(out) == pytest.approx(losses(one_process), abs=1e-5) and len(losses(out)) == 16
    one, two = (json.loads((o / "metrics.json").read_text()) for o in (one_process, out))
    assert two["test_loss"] == pytest.approx(one["test_loss"], abs=1e-5)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="--batch-size 7 does not split evenly over 2 processes; use a multiple of 2"):
        training_arguments(classification_config(epochs=1.0, lr=1e-4, batch_size=7), "/tmp/unused")


@pytest.mark.parametrize("name", ["ddp", "fsdp", "multi_node"])
def test_accelerate_configs_are_valid(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    assert config.num_processes >= 2 and config.mixed_precision == "no"
