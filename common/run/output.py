"""Starting a run into its output folder, and the final save.

- `start_run`: the folder checked (common.run.folders: only a run of ours is replaced or resumed), a save cut off
  last time finished, the checkpoint --resume continues from (common.run.resume).
- Nothing is deleted before every input has been checked; an earlier run's checkpoints go when training starts.
- When training ends, the final model, tokenizer, metrics.json, run_config.json, log_history.json and the report
  files are written to a staging folder next to --output-dir and swapped in, replacing the run's own files
  (and the checkpoints --save-steps wrote); files the user added to the folder are kept. If the save fails after
  the weights were written, they are kept in NAME.unsaved-TIME and the error says so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import set_seed

from common import tasks
from common.config import RunConfig
from common.errors import UserError
from common.model import lora
from common.report import run_files
from common.run import hub
from common.run.folders import check_output_dir
from common.run.resume import resume_point
from common.runtime import umask
from common.train.checkpoints import RUN_CONFIG, WHILE_TRAINING, mark_run, tensorboard_dir, written_by_runs

logger = logging.getLogger(__name__)


def start_run(config: RunConfig) -> str | None:
    """Before any work: the output folder checked, the random state seeded; returns the checkpoint --resume
    continues from (None without --resume). Nothing is deleted here: an earlier run's checkpoints go only when
    training starts (RecipeTrainer.train), once the data and the model have loaded."""
    config.check()
    remove_stale_staging(config.output.output_dir)  # first: it may put a run cut off while saving back in place
    check_output_dir(config.output.output_dir, config.output.overwrite, config.output.resume)
    if config.output.push_to_hub:
        hub.check_can_push(config.output.push_to_hub)
    resume = resume_point(config)
    set_seed(config.training.seed)
    return resume


def _beside(output_dir: Path, kind: str) -> re.Pattern:
    """The names of the hidden folders a save makes next to `output_dir` with mkdtemp: .NAME.partial-XXXXXXXX
    (staging) and .NAME.old-XXXXXXXX (the old run, moved aside while the new one is put in place)."""
    return re.compile(re.escape(f".{output_dir.name}.{kind}-") + r"[a-z0-9_]{8}")


def remove_stale_staging(output_dir: str | Path) -> None:
    """Clean up after a save killed mid-way (run under the output folder's lock, common.run.launch, so no other run
    is saving): remove its staging folders (.NAME.partial-XXXXXXXX), and finish a swap cut off between its renames
    (.NAME.old-XXXXXXXX/run): the old run goes back in place if the new one never arrived, else the files the user
    had put in it are carried over to the new run."""
    output_dir = Path(output_dir).absolute()
    if not output_dir.parent.is_dir():
        return
    staging, old = _beside(output_dir, "partial"), _beside(output_dir, "old")
    for stale in sorted(output_dir.parent.iterdir()):
        if not stale.is_dir() or stale.is_symlink():
            continue
        if staging.fullmatch(stale.name):
            logger.info("removing %s, left by a save that was cut off", stale)
            shutil.rmtree(stale, ignore_errors=True)
        elif old.fullmatch(stale.name):
            previous = stale / "run"
            if previous.is_dir() and not previous.is_symlink():
                if not output_dir.exists():
                    os.replace(previous, output_dir)
                    logger.info("restored %s from %s, where a save that was cut off had moved it", output_dir, stale)
                else:
                    _carry_over(previous, output_dir)
            shutil.rmtree(stale, ignore_errors=True)


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
            _write_run(output_dir, model, weights, tokenizer, metrics, config, history, evaluation)
            if config.output.push_to_hub:
                hub.push_folder(output_dir, config.output.push_to_hub)
    finally:
        state.wait_for_everyone()
    return output_dir


def _write_run(
    output_dir: Path,
    model,
    weights: dict | None,
    tokenizer,
    metrics: dict,
    config: RunConfig,
    history: list | None,
    evaluation,
) -> None:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    weights_saved = False
    try:
        model.save_pretrained(staging, state_dict=weights, safe_serialization=True)
        lora.save_extras(model, staging, config.model.model)
        weights_saved = True
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / RUN_CONFIG).write_text(json.dumps(config.flat(), indent=2, default=str) + "\n")
        if history is not None:
            (staging / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
        task = tasks.get(config.task)
        parts = task.report(evaluation) if evaluation is not None else None
        for name, content in run_files(config, metrics, history or [], task, parts).items():
            (staging / name).write_bytes(content) if isinstance(content, bytes) else (staging / name).write_text(
                content
            )
        if tensorboard_dir(output_dir).is_dir():  # written while training (--report-to tensorboard): keep it
            shutil.copytree(tensorboard_dir(output_dir), tensorboard_dir(staging))
        mark_run(staging, [p.name for p in staging.iterdir()])
        _usual_modes(staging)
    except Exception as e:
        raise _save_failed(e, output_dir, staging, weights_saved) from None
    except BaseException:  # Ctrl-C, SIGTERM: the old output stays as it was
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, output_dir)
    logger.info("saved model, tokenizer and metrics to %s", output_dir)


@contextlib.contextmanager
def staged(output_dir: str | Path):
    """For a run made of several runs (--kfold's folds, --search's trials): all of it is written into a staging
    folder beside --output-dir (yielded, with the same parent, so relative paths stay relative) and swapped in
    when it is done, as the final save is. A run cut off in its third fold (bad input, Ctrl-C, SIGTERM) leaves
    --output-dir as it was, the earlier run and the user's files in it untouched; after a SIGKILL the next start
    removes the staging folder (remove_stale_staging)."""
    output_dir = Path(output_dir)
    output_dir.absolute().parent.mkdir(parents=True, exist_ok=True)
    made = tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.absolute().parent)
    staging = output_dir.parent / Path(made).name
    try:
        yield staging
    except BaseException:
        shutil.rmtree(made, ignore_errors=True)
        raise
    _usual_modes(Path(made))
    _swap_in(Path(made), output_dir.absolute())


def _usual_modes(folder: Path) -> None:
    """The modes files and folders get from the umask: mkdtemp makes the staging folder 700, and safetensors wrote
    model.safetensors 600 where every other file of the run was 644."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _save_failed(error: Exception, output_dir: Path, staging: Path, weights_saved: bool) -> UserError:
    """The one line for a save that failed; the trained weights are kept if they were written."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        reason = "the disk is full"
    else:
        reason = f"{type(error).__name__}: {str(error).strip() or 'no detail'}"
    if weights_saved:
        kept = output_dir.parent / f"{output_dir.name}.unsaved-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            os.replace(staging, kept)
            return UserError(
                f"{reason}: could not finish saving the run to '{output_dir}'; the trained model is kept in "
                f"'{kept}' (its tokenizer and reports may be incomplete)"
            )
        except OSError:
            return UserError(
                f"{reason}: could not finish saving the run to '{output_dir}'; the trained model is in "
                f"'{staging}' (its tokenizer and reports may be incomplete)"
            )
    shutil.rmtree(staging, ignore_errors=True)
    fix = "free some space or choose another --output-dir" if reason == "the disk is full" else "fix that and rerun"
    return UserError(f"{reason}: could not save the model to '{output_dir}'; {fix} (nothing was written)")


def _swap_in(staging: Path, output_dir: Path) -> None:
    """Put the new run in place of the old one in two renames, then carry over what the user had put in the old
    folder (whatever its marker does not list as a run's); a name the new run also wrote is kept as NAME.kept."""
    if not output_dir.exists():
        os.replace(staging, output_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
    os.replace(output_dir, old / "run")
    try:
        os.replace(staging, output_dir)
    except BaseException:
        os.replace(old / "run", output_dir)
        old.rmdir()
        raise
    _carry_over(old / "run", output_dir)
    shutil.rmtree(old)


def _carry_over(previous: Path, output_dir: Path) -> None:
    """Move into `output_dir` what the user had put in the run folder `previous`: whatever its marker does not
    list as a run's (a folder without the marker holds only what a run in progress writes: is_our_run)."""
    ours = written_by_runs(previous) or set(WHILE_TRAINING)
    for entry in sorted(previous.iterdir()):
        if entry.name not in ours:
            target = output_dir / entry.name
            while target.exists() or target.is_symlink():
                target = target.with_name(target.name + ".kept")
            os.replace(entry, target)
            logger.info("kept %s (not written by a run)", target)
