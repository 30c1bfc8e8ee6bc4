"""The output folder of a run: refuse to clobber another run, --resume, and the atomic final save.

When training ends, the final model, tokenizer, metrics.json, run_config.json, log_history.json and the report
files are written to a staging folder next to --output-dir and moved into place in one step, replacing the
checkpoints (common.train.checkpoints) that --save-steps wrote while training.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import set_seed

from common.config import OutputConfig, RunConfig
from common.errors import UserError
from common.model import lora
from common.report import run_files
from common.train.checkpoints import COMPLETE, checkpoint_dir, last_complete_checkpoint, tensorboard_dir

logger = logging.getLogger(__name__)


def start_run(config: RunConfig) -> str | None:
    """Before any work: the output folder checked, the random state seeded; returns the checkpoint --resume
    continues from (None without --resume)."""
    config.check()
    check_output_dir(config.output.output_dir, config.output.overwrite, config.output.resume)
    resume = resume_point(config.output)
    set_seed(config.training.seed)
    return resume


RUN_MARKER = ".lm-recipes-run"  # written into every output folder a run of ours makes; --overwrite replaces only those
# what a folder may hold while a run of ours writes into it (--save-steps, --report-to tensorboard)
WHILE_TRAINING = {"checkpoints", "tensorboard", RUN_MARKER}


def is_our_run(path: Path) -> bool:
    """Whether `path` is an output folder this project wrote: it has the marker, or it holds only what a run in
    progress writes, or (a run saved before the marker existed) run_config.json beside metrics.json."""
    names = {p.name for p in path.iterdir()}
    return RUN_MARKER in names or names <= WHILE_TRAINING or {"run_config.json", "metrics.json"} <= names


def mark_run(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_MARKER).write_text("an output folder of lm-recipes: --overwrite may replace it\n")


def _never_replaced(path: Path) -> str | None:
    """Why `path` may not be replaced whatever the flags say, or None."""
    resolved, cwd, home = path.resolve(), Path.cwd().resolve(), Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in (cwd, *cwd.parents):
        return "is the root, your home or the current folder (or one above it)"
    if (path / ".git").exists():
        return "holds a git repository (.git)"
    return None


def check_output_dir(path: str | Path, overwrite: bool, resume: str | None = None) -> Path:
    """Refuse to replace anything but a run of ours, and that only when asked; fail now (not after training) if
    the folder cannot be written. With --overwrite, the old run's checkpoints and curves go now (they must not be
    resumed into, or mixed with, this run); the rest of it is replaced by the final save in one step."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(
            f"--output-dir '{path}' is a symbolic link; give the real folder it points to, or another --output-dir"
        )
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir '{path}' is a file, not a folder; choose another --output-dir")
    if path.is_dir() and any(path.iterdir()):
        reason = _never_replaced(path) or (None if is_our_run(path) else "holds files that no run of lm-recipes wrote")
        if reason:
            raise UserError(
                f"--output-dir '{path}' {reason}, so it is never replaced; choose another --output-dir "
                f"(a new or empty folder)"
            )
        if not (overwrite or resume):
            raise UserError(
                f"--output-dir '{path}' already holds a run; pass --overwrite to replace it, --resume to "
                f"continue its training, or choose another --output-dir"
            )
    parent = path.absolute().parent
    existing = next(p for p in [parent, *parent.parents] if p.exists())
    if not existing.is_dir():
        raise UserError(f"cannot create --output-dir '{path}': '{existing}' is a file; choose another --output-dir")
    if not os.access(existing, os.W_OK):
        raise UserError(f"cannot write to '{existing}' for --output-dir '{path}'; choose a folder you can write to")
    if overwrite and path.is_dir() and not resume:
        shutil.rmtree(
            checkpoint_dir(path), ignore_errors=True
        )  # an old run's checkpoints must not be resumed into this one
        shutil.rmtree(tensorboard_dir(path), ignore_errors=True)  # nor its curves mixed into this one's
    return path


def resume_point(output: OutputConfig) -> str | None:
    """--resume (the last complete checkpoint in --output-dir) or --resume PATH, checked; None without --resume."""
    if not output.resume:
        return None
    if output.resume != "last":
        path = Path(output.resume)
        if not (path / COMPLETE).exists() and not (path / "trainer_state.json").exists():
            raise UserError(
                f"--resume '{path}' is not a complete checkpoint folder; pass --resume alone for the last "
                f"complete one in --output-dir"
            )
        return str(path)
    found = last_complete_checkpoint(checkpoint_dir(output.output_dir))
    if found is None:
        raise UserError(
            f"--resume: no complete checkpoint in '{checkpoint_dir(output.output_dir)}'; start without "
            f"--resume (add --save-steps N to write checkpoints)"
        )
    logger.info("resuming from %s", found)
    return str(found)


def save_run(config: RunConfig, model, tokenizer, metrics: dict, history: list | None = None, evaluation=None) -> Path:
    """Write into --output-dir: the model (safetensors; a LoRA adapter, or with --merge-lora the merged model),
    tokenizer, metrics.json, run_config.json, log_history.json, a model card (README.md) and, given an
    `evaluation` (common.evaluate), its files, evaluation.json, the training curves and report.md. All of it
    goes to a staging folder first and is moved into place in one step.

    A crash or a full disk while saving leaves no staging folder and never a half-written output.
    With several processes (torchrun, accelerate launch) the first one writes and the others wait for it.
    """
    output_dir = Path(config.output.output_dir)
    model = lora.for_saving(model, config.techniques.merge_lora)
    state = PartialState()
    weights = None
    if state.distributed_type == DistributedType.FSDP:  # each process holds a shard: all take part in gathering them
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    try:
        if state.is_main_process:
            _write_run(output_dir, model, weights, tokenizer, metrics, config.flat(), history, evaluation)
    finally:
        state.wait_for_everyone()
    return output_dir


def _write_run(
    output_dir: Path,
    model,
    weights: dict | None,
    tokenizer,
    metrics: dict,
    config: dict,
    history: list | None,
    evaluation,
) -> None:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        model.save_pretrained(staging, state_dict=weights, safe_serialization=True)
        lora.save_extras(model, staging)
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "run_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        mark_run(staging)
        if history is not None:
            (staging / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
        for name, content in run_files(config, metrics, history or [], evaluation).items():
            (staging / name).write_bytes(content) if isinstance(content, bytes) else (staging / name).write_text(
                content
            )
        if tensorboard_dir(output_dir).is_dir():  # written while training (--report-to tensorboard): keep it
            shutil.copytree(tensorboard_dir(output_dir), tensorboard_dir(staging))
        os.chmod(staging, 0o755)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UserError(
                f"the disk is full: could not save the model to '{output_dir}'; free some space or choose "
                f"another --output-dir (nothing was written)"
            ) from None
        raise
    logger.info("saved model, tokenizer and metrics to %s", output_dir)
