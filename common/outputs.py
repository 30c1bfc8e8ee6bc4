"""The output folder: refuse to clobber a run, checkpoints that survive a crash, --resume, atomic final save.

Layout of --output-dir while training with --save-steps N:
  checkpoints/checkpoint-<step>/   Trainer's checkpoint (model safetensors, optimizer, scheduler, RNG states)
  checkpoints/checkpoint-<step>/COMPLETE   written after everything else: only these are resumed from
When training ends, the final model, tokenizer, metrics.json, run_config.json and log_history.json are written
to a staging folder next to --output-dir and moved into place in one step, replacing the checkpoints.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import TrainerCallback

from common import lora, plots, reporting
from common.errors import UserError

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"


def check_output_dir(path: str | Path, overwrite: bool, resume: str | None = None) -> Path:
    """Refuse to replace another run's results unless asked, and fail now (not after training) if unwritable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir '{path}' is a file, not a folder; choose another --output-dir")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or resume):
        raise UserError(f"--output-dir '{path}' already holds files; pass --overwrite to replace them, --resume to "
                        f"continue its training, or choose another --output-dir")
    parent = path.absolute().parent
    existing = next(p for p in [parent, *parent.parents] if p.exists())
    if not existing.is_dir():
        raise UserError(f"cannot create --output-dir '{path}': '{existing}' is a file; choose another --output-dir")
    if not os.access(existing, os.W_OK):
        raise UserError(f"cannot write to '{existing}' for --output-dir '{path}'; choose a folder you can write to")
    if overwrite and path.is_dir() and not resume:
        shutil.rmtree(path / "checkpoints", ignore_errors=True)  # an old run's checkpoints must not be resumed into this one
        shutil.rmtree(tensorboard_dir(path), ignore_errors=True)  # nor its curves mixed into this one's
    return path


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
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / COMPLETE).exists()] if folder.is_dir() else []
    return max(found)[1] if found else None


def resume_point(args) -> str | None:
    """--resume (the last complete checkpoint in --output-dir) or --resume PATH, checked; None without --resume."""
    if not args.resume:
        return None
    if args.resume != "last":
        path = Path(args.resume)
        if not (path / COMPLETE).exists() and not (path / "trainer_state.json").exists():
            raise UserError(f"--resume '{path}' is not a complete checkpoint folder; pass --resume alone for the last "
                            f"complete one in --output-dir")
        return str(path)
    found = last_complete_checkpoint(checkpoint_dir(args.output_dir))
    if found is None:
        raise UserError(f"--resume: no complete checkpoint in '{checkpoint_dir(args.output_dir)}'; start without "
                        f"--resume (add --save-steps N to write checkpoints)")
    logger.info("resuming from %s", found)
    return str(found)


def save_run(output_dir: str | Path, model, tokenizer, metrics: dict, config: dict, history: list | None = None,
             evaluation=None) -> Path:
    """Write model (safetensors), tokenizer, metrics.json, run_config.json, log_history.json, a model card
    (README.md) and, given an `evaluation` (common.evaluation), its files, evaluation.json, the training curves
    and report.md into a staging folder, then move it into place.

    A crash or a full disk while saving leaves no staging folder and never a half-written output.
    With several processes (torchrun, accelerate launch) the first one writes and the others wait for it.
    """
    output_dir = Path(output_dir)
    state = PartialState()
    weights = None
    if state.distributed_type == DistributedType.FSDP:  # each process holds a shard: all take part in gathering them
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    try:
        if state.is_main_process:
            _write_run(output_dir, model, weights, tokenizer, metrics, config, history, evaluation)
    finally:
        state.wait_for_everyone()
    return output_dir


def _write_evaluation(folder: Path, evaluation, metrics: dict, config: dict, history: list) -> None:
    """The evaluation's files, evaluation.json (validation and test, per class), training_curves.png, report.md."""
    for name, content in evaluation.files.items():
        (folder / name).write_bytes(content) if isinstance(content, bytes) else (folder / name).write_text(content)
    validation = next((h for h in reversed(history) if "eval_loss" in h), {})
    details = {"validation": validation, **evaluation.details}
    (folder / "evaluation.json").write_text(json.dumps(details, indent=1, default=float) + "\n")
    metric = "next_token_accuracy" if "block_size" in config else "accuracy"
    (folder / "training_curves.png").write_bytes(plots.training_curves(history, metric))
    per_class = tuple(f"{label}_" for label in evaluation.details.get("test", {}).get("labels", []))
    (folder / "report.md").write_text(reporting.run_report(config, metrics, history, evaluation.sections, evaluation.data,
                                                           per_class))


def _write_run(output_dir: Path, model, weights: dict | None, tokenizer, metrics: dict, config: dict, history: list | None,
               evaluation) -> None:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        model.save_pretrained(staging, state_dict=weights, safe_serialization=True)
        lora.save_extras(model, staging)
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "run_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        (staging / "README.md").write_text(reporting.model_card(config, metrics))
        if history is not None:
            (staging / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
        if evaluation is not None:
            _write_evaluation(staging, evaluation, metrics, config, history or [])
        if tensorboard_dir(output_dir).is_dir():  # written while training (--report-to tensorboard): keep it
            shutil.copytree(tensorboard_dir(output_dir), tensorboard_dir(staging))
        os.chmod(staging, 0o755)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(f"the disk is full: could not save the model to '{output_dir}'; free some space or choose "
                            f"another --output-dir (nothing was written)") from None
        raise
    logger.info("saved model, tokenizer and metrics to %s", output_dir)
