"""Checkpoints a crash cannot spoil: Trainer's checkpoint folders, marked COMPLETE once fully written.

Layout of --output-dir while training with --save-steps N:
  checkpoints/checkpoint-<step>/            Trainer's checkpoint (model safetensors, optimizer, scheduler, RNG states)
  checkpoints/checkpoint-<step>/COMPLETE    written after everything else: only these are resumed from
  tensorboard/                              --report-to tensorboard, written while training
"""

from __future__ import annotations

import re
from pathlib import Path

from transformers import TrainerCallback

COMPLETE = "COMPLETE"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def tensorboard_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "tensorboard"


class MarkCompleteCheckpoints(TrainerCallback):
    """Writes COMPLETE into each checkpoint once Trainer has finished writing it (on_save runs after the save)."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and args.should_save:
            (folder / COMPLETE).write_text(f"step {state.global_step}\n")


def last_complete_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint with the highest step that was completely written, if any."""
    folder = Path(folder)
    found = (
        [
            (int(m.group(1)), p)
            for p in folder.glob("checkpoint-*")
            if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / COMPLETE).exists()
        ]
        if folder.is_dir()
        else []
    )
    return max(found)[1] if found else None
