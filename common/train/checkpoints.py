"""Checkpoints a crash cannot spoil: Trainer's checkpoint folders, marked COMPLETE once fully written.

Layout of --output-dir while training with --save-steps N:
  .lm-recipes-run                           the run folder's marker: what runs of ours wrote here (see RUN_MARKER)
  checkpoints/checkpoint-<step>/            Trainer's checkpoint (model safetensors, optimizer, scheduler, RNG states)
  checkpoints/checkpoint-<step>/run_config.json   the run's settings: --resume refuses to continue with others
  checkpoints/checkpoint-<step>/COMPLETE    written after everything else: only these are resumed from
  tensorboard/                              --report-to tensorboard, written while training

A checkpoint marked COMPLETE can still be damaged later (a disk error, a copy cut short): `damage()` reads the
file headers cheaply, and `last_complete_checkpoint` passes over a damaged one to the one before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import zipfile
from pathlib import Path

from transformers import TrainerCallback

from common.errors import UserError
from common.model.load import weights_problem

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
RUN_CONFIG = "run_config.json"
# Written into every output folder a run of ours makes, listing the names that run wrote there: --overwrite and
# --resume replace only folders that have it, and keep whatever else the user put in them.
RUN_MARKER = ".lm-recipes-run"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")  # Trainer's checkpoint folders: checkpoint-<step>
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard's event files
WHILE_TRAINING = ["checkpoints", "tensorboard", RUN_MARKER]  # what a run in progress writes into its folder


def mark_run(path: str | Path, files: list[str] | None = None) -> None:
    """Mark `path` as an output folder of ours, whose entries `files` (plus WHILE_TRAINING) a run wrote."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    names = sorted(set(WHILE_TRAINING) | set(files or []))
    (path / RUN_MARKER).write_text(json.dumps({"written_by": "lm-recipes", "files": names}, indent=1) + "\n")


def written_by_runs(path: str | Path) -> set[str] | None:
    """The names in `path` that runs of ours wrote, from its marker; None where that is not recorded (a folder
    from before the marker listed its files: all of it was a run's)."""
    try:
        return set(json.loads((Path(path) / RUN_MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def tensorboard_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "tensorboard"


DATA = "data.json"  # in a checkpoint: what the training data were (data_fingerprint), checked by --resume


def data_fingerprint(dataset) -> dict | None:
    """The training data's row count and a hash of 64 rows spread over them (every row of a small set): a resumed
    run on other data (a file edited since, labels flipped, rows removed) would train on another schedule, silently.
    None for a dataset without a length."""
    try:
        rows = len(dataset)
    except TypeError:
        return None
    digest = hashlib.sha256(str(rows).encode())
    for index in sorted({round(i * (rows - 1) / 63) for i in range(64)} if rows else set()):
        row = dataset[index]
        items = row.items() if isinstance(row, dict) else enumerate(row if isinstance(row, (list, tuple)) else [row])
        for name, value in items:
            value = value.tolist() if hasattr(value, "tolist") else value
            digest.update(f"{name}={value!r};".encode())
    return {"rows": rows, "sample_sha256": digest.hexdigest()}


def check_same_data(checkpoint: str | Path, now: dict | None) -> None:
    """Refuse to resume `checkpoint` on training data other than it was written with (its data.json)."""
    try:
        then = json.loads((Path(checkpoint) / DATA).read_text())
    except (OSError, ValueError):
        return  # a checkpoint from before data.json, or Trainer's own: nothing to compare with
    if now is None or then == now:
        return
    counts = f"{then.get('rows')} rows then, {now['rows']} now" if then.get("rows") != now["rows"] else "other rows"
    raise UserError(
        f"--resume: the training data differ from those the checkpoint was trained on ({counts}); resume with the "
        f"data the run started with, or start anew with --overwrite"
    )


class MarkCompleteCheckpoints(TrainerCallback):
    """Writes the run's settings and then COMPLETE into each checkpoint once Trainer has finished writing it
    (on_save runs after the save), and marks the run folder the checkpoints are in as ours."""

    def __init__(self, run_config: dict | None = None):
        self.run_config = run_config
        self.data: dict | None = None  # data_fingerprint of the training data, set when training starts

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and args.should_save:
            if self.run_config is not None:
                (folder / RUN_CONFIG).write_text(json.dumps(self.run_config, indent=1, default=str) + "\n")
            if self.data is not None:
                (folder / DATA).write_text(json.dumps(self.data) + "\n")
            (folder / COMPLETE).write_text(f"step {state.global_step}\n")
            run_folder = Path(args.output_dir).parent
            if Path(args.output_dir).name == "checkpoints" and not (run_folder / RUN_MARKER).exists():
                mark_run(run_folder)


def clear_previous_run(checkpoint_folder: str | Path, tensorboard_folder: str | Path | None) -> None:
    """Remove an earlier run's checkpoint-N folders and TensorBoard event files (nothing else) before a fresh start."""
    for checkpoint in Path(checkpoint_folder).glob("checkpoint-*"):
        if CHECKPOINT_NAME.fullmatch(checkpoint.name) and checkpoint.is_dir() and not checkpoint.is_symlink():
            logger.info("removing %s, an earlier run's checkpoint", checkpoint)
            shutil.rmtree(checkpoint)
    if tensorboard_folder is not None:
        for events in Path(tensorboard_folder).glob(EVENTS_PREFIX + "*"):
            events.unlink()


def damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's files, or None: Trainer's state, the model's weights and the optimizer's
    state must be there (without them Trainer fails, or silently starts a fresh optimizer), each safetensors file
    as long as its header says, each torch.save file (optimizer, scheduler, RNG state) a whole zip archive."""
    names = [path.name for path in checkpoint.iterdir()]
    if "trainer_state.json" not in names:
        return "trainer_state.json is missing"
    if not any(name.endswith((".safetensors", ".bin")) for name in names):
        return "it holds no model weights (model.safetensors)"
    if not any(name.startswith(("optimizer", "global_step")) for name in names):  # global_step*: DeepSpeed's
        return "optimizer.pt (the optimizer's state) is missing"
    for path in sorted(checkpoint.iterdir()):
        if path.suffix == ".safetensors" and (problem := weights_problem(path)):
            return problem
        if path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
            return f"{path.name} is cut short or damaged"
    return None


def last_complete_checkpoint(folder: str | Path, check: bool = False) -> Path | None:
    """The checkpoint with the highest step that was completely written, if any; with `check`, the highest whose
    files are also intact (a damaged one is named in the log and passed over)."""
    folder = Path(folder)
    found = (
        [
            (int(m.group(1)), p)
            for p in folder.glob("checkpoint-*")
            if (m := CHECKPOINT_NAME.fullmatch(p.name)) and (p / COMPLETE).exists()
        ]
        if folder.is_dir()
        else []
    )
    for _, checkpoint in sorted(found, reverse=True):
        problem = damage(checkpoint) if check else None
        if problem is None:
            return checkpoint
        logger.warning("passing over %s: %s", checkpoint, problem)
    return None
