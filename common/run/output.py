"""The output folder of a run: never clobber what is not a run of ours, one run at a time, --resume, the final save.

- A run folder carries a marker (common.train.checkpoints.RUN_MARKER) listing what runs wrote there. --overwrite
  and --resume accept only such folders, and never /, home, the current folder or above, a git checkout, a symlink.
- Nothing is deleted before every input has been checked; an earlier run's checkpoints go when training starts.
- `output_lock` keeps a second run out of a folder while one is writing it.
- When training ends, the final model, tokenizer, metrics.json, run_config.json, log_history.json and the report
  files are written to a staging folder next to --output-dir and swapped in, replacing the run's own files
  (and the checkpoints --save-steps wrote); files the user added to the folder are kept. If the save fails after
  the weights were written, they are kept in NAME.unsaved-TIME and the error says so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import set_seed

from common import tasks
from common.config import RunConfig
from common.errors import UserError
from common.model import lora
from common.report import run_files
from common.run import hub
from common.train.checkpoints import (
    COMPLETE,
    RUN_CONFIG,
    RUN_MARKER,
    WHILE_TRAINING,
    checkpoint_dir,
    damage,
    last_complete_checkpoint,
    mark_run,
    tensorboard_dir,
    written_by_runs,
)

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


def is_our_run(path: Path) -> bool:
    """Whether `path` is provably an output folder this project wrote: it has the marker, or it holds only what a
    run in progress writes before its first checkpoint marks it (checkpoint-N folders, TensorBoard event files).
    run_config.json beside metrics.json proves nothing: a user's own files (or an old version's run) may be named
    so, and a save replaces what it cannot tell apart."""
    names = {p.name for p in path.iterdir()}
    if RUN_MARKER in names:
        return True
    if not names <= set(WHILE_TRAINING):
        return False
    checkpoints, events = checkpoint_dir(path), tensorboard_dir(path)
    saved = checkpoints.iterdir() if checkpoints.is_dir() else ()
    logged = events.iterdir() if events.is_dir() else ()
    return all(re.fullmatch(r"checkpoint-\d+", p.name) for p in saved) and all(
        p.name.startswith("events.out.tfevents.") for p in logged
    )


def _first_link(path: Path) -> Path | None:
    """A symbolic link anywhere inside `path` (not followed), or None: replacing or resuming a folder that holds
    one would delete or write through it, into whatever it points to (another experiment's logs)."""
    for folder, subfolders, files in os.walk(path):
        for name in [*subfolders, *files]:
            if os.path.islink(os.path.join(folder, name)):
                return Path(folder, name)
    return None


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
    the folder cannot be written. Deletes nothing: the final save replaces the run's own files and keeps the rest."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(
            f"--output-dir '{path}' is a symbolic link; give the real folder it points to, or another --output-dir"
        )
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir '{path}' is a file, not a folder; choose another --output-dir")
    if path.is_dir() and any(path.iterdir()):
        reason = _never_replaced(path)
        if reason is None and not is_our_run(path):
            reason = "holds files that no run of lm-recipes wrote"
            if RUN_MARKER not in {p.name for p in path.iterdir()} and (path / RUN_CONFIG).exists():
                reason = (
                    f"holds {RUN_CONFIG} but no {RUN_MARKER} marker (a run of a version before the marker, or "
                    f"files named like a run's), so its files cannot be told from yours"
                )
        if reason is None and (link := _first_link(path)):
            reason = f"holds a symbolic link ({link.relative_to(path)} -> {os.readlink(link)})"
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
    return path


def _staging_pattern(output_dir: Path) -> re.Pattern:
    return re.compile(re.escape(f".{output_dir.name}.partial-") + r"[a-z0-9_]{8}")


def _old_pattern(output_dir: Path) -> re.Pattern:
    return re.compile(re.escape(f".{output_dir.name}.old-") + r"[a-z0-9_]{8}")


def remove_stale_staging(output_dir: str | Path) -> None:
    """Clean up after a save killed mid-way (run under the output folder's lock, common.run.launch, so no other run
    is saving): remove its staging folders (.NAME.partial-XXXXXXXX), and finish a swap cut off between its renames
    (.NAME.old-XXXXXXXX/run): the old run goes back in place if the new one never arrived, else the files the user
    had put in it are carried over to the new run."""
    output_dir = Path(output_dir).absolute()
    if not output_dir.parent.is_dir():
        return
    staging, old = _staging_pattern(output_dir), _old_pattern(output_dir)
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


@contextlib.contextmanager
def output_lock(output_dir: str | Path):
    """Hold --output-dir for one run at a time: a second run into the same folder refuses at once instead of
    training for an hour and then failing to save. The lock lives in the temp folder (keyed by the resolved path),
    never in the user's folders, and the OS releases it when the process ends, however it ends.
    Under torchrun / accelerate launch only the first process takes it."""
    if fcntl is None or int(os.environ.get("RANK", "0")) > 0:  # no fcntl on Windows: no lock there
        yield
        return
    key = hashlib.sha256(str(Path(output_dir).resolve()).encode()).hexdigest()[:24]
    folder = _private_folder(Path(tempfile.gettempdir()) / f"lm-recipes-locks-{os.getuid()}")
    # O_NOFOLLOW: never open (and truncate) whatever a link planted at this name points to
    try:
        descriptor = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise UserError(
            f"cannot open the lock file '{folder / key}.lock' ({e.strerror or e}: a link, or not a file); remove it"
        ) from None
    with os.fdopen(descriptor, "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise UserError(
                f"--output-dir '{output_dir}' is in use by a run that has not ended ({holder}); wait for it, "
                f"or choose another --output-dir"
            ) from None
        lock.seek(0)
        lock.truncate(0)
        lock.write(f"process {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _private_folder(folder: Path) -> Path:
    """`folder` created for this user alone (mode 700), or checked to be so: in a temp folder every user may write,
    another user could have made it first, or planted a link at its name."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(
            f"the lock folder '{folder}' is not a folder of yours (a link, or another user's); remove it, or set "
            f"TMPDIR to a folder of your own"
        )
    if info.st_mode & 0o077:  # made by an earlier version, open to others to read
        os.chmod(folder, 0o700)
    return folder


# settings --resume may change: where the run goes and what is reported after training; every other one is
# the run's own and must match the checkpoint's
CHANGEABLE_ON_RESUME = {
    "output_dir",
    "overwrite",
    "resume",
    "save_steps",
    "report_to",
    "push_to_hub",
    "explain",
    "prompt",
}
CHANGEABLE_ON_RESUME |= {"max_new_tokens", "logging_steps"}
CHANGEABLE_ON_RESUME |= {"allow_pickle", "trust_remote_code"}  # permissions asked on the command line, not settings
# settings whose `auto` matches any value a checkpoint recorded: max_length's auto resolves from the data and is
# recorded as the length used; lm_loss's chunked and standard losses are the same loss (runs before lm_loss had
# auto recorded chunked, and were refused on --resume once auto became the default)
AUTO_MATCHES_ANY = {"max_length", "lm_loss"}


def resume_point(config: RunConfig) -> str | None:
    """--resume (the last complete, intact checkpoint in --output-dir) or --resume PATH, checked against the
    run's settings; None without --resume."""
    output = config.output
    if not output.resume:
        return None
    if output.resume != "last":
        path = Path(output.resume)
        if not (path / COMPLETE).exists() and not (path / "trainer_state.json").exists():
            raise UserError(
                f"--resume '{path}' is not a complete checkpoint folder; pass --resume alone for the last "
                f"complete one in --output-dir"
            )
        problem = damage(path)
        if problem:
            raise UserError(f"--resume '{path}' is damaged ({problem}); pass another checkpoint or start anew")
    else:
        path = last_complete_checkpoint(checkpoint_dir(output.output_dir), check=True)
        if path is None and last_complete_checkpoint(checkpoint_dir(output.output_dir)):
            raise UserError(
                f"--resume: every checkpoint in '{checkpoint_dir(output.output_dir)}' is damaged (the log says "
                f"how); start anew with --overwrite"
            )
        if path is None:
            raise UserError(
                f"--resume: no complete checkpoint in '{checkpoint_dir(output.output_dir)}'; start without "
                f"--resume (add --save-steps N to write checkpoints)"
            )
    pickled = [p.name for p in path.glob("*.bin")]
    if pickled and not any(path.glob("*.safetensors")) and not config.model.allow_pickle:
        raise UserError(
            f"--resume '{path}' holds its weights as pickle ({pickled[0]}), which can run code when loaded; pass "
            f"--allow-pickle if you trust it"
        )
    _check_same_settings(config, path)
    logger.info("resuming from %s", path)
    return str(path)


def _check_same_settings(config: RunConfig, checkpoint: Path) -> None:
    """A resumed run continues the run as it was started: refuse settings that differ from the checkpoint's
    (a new --batch-size or --lr would be half-applied, a new --model would not fit the weights)."""
    try:
        saved = json.loads((checkpoint / RUN_CONFIG).read_text())
    except FileNotFoundError:
        return  # a checkpoint from elsewhere (Trainer's own): nothing recorded to compare with
    except ValueError:
        raise UserError(f"--resume: '{checkpoint / RUN_CONFIG}' is damaged; pass another checkpoint") from None
    now = json.loads(json.dumps(config.flat(), default=str))
    # a setting newer than the checkpoint was, in effect, at its default then
    saved = {**json.loads(json.dumps(type(config)().flat(), default=str)), **saved}
    changed = [
        f"--{name.replace('_', '-')} {now.get(name)} (was {saved.get(name)})"
        for name in sorted(set(now) | set(saved))
        if name not in CHANGEABLE_ON_RESUME
        and now.get(name) != saved.get(name)
        and not (name in AUTO_MATCHES_ANY and now.get(name) == "auto")
    ]
    if changed:
        raise UserError(
            f"--resume continues the run as it was started, but these settings differ from its checkpoint: "
            f"{', '.join(changed)}; drop them, or start a new run (--overwrite or another --output-dir)"
        )


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
    config: dict,
    history: list | None,
    evaluation,
) -> None:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    weights_saved = False
    try:
        model.save_pretrained(staging, state_dict=weights, safe_serialization=True)
        lora.save_extras(model, staging, config.get("model"))
        weights_saved = True
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / RUN_CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
        if history is not None:
            (staging / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
        task = tasks.get(config["task"])
        parts = task.report(evaluation) if evaluation is not None else None
        for name, content in run_files(config, metrics, history or [], task, parts).items():
            (staging / name).write_bytes(content) if isinstance(content, bytes) else (staging / name).write_text(
                content
            )
        if tensorboard_dir(output_dir).is_dir():  # written while training (--report-to tensorboard): keep it
            shutil.copytree(tensorboard_dir(output_dir), tensorboard_dir(staging))
        mark_run(staging, [p.name for p in staging.iterdir()])
        os.chmod(staging, 0o755)
    except Exception as e:
        raise _save_failed(e, output_dir, staging, weights_saved) from None
    except BaseException:  # Ctrl-C, SIGTERM: the old output stays as it was
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, output_dir)
    logger.info("saved model, tokenizer and metrics to %s", output_dir)


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
