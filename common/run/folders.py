"""Whose is an output folder, and who is writing it: a run replaces or resumes only a folder of ours, never one
holding a link, a git checkout, the root, home or the current folder; and one run at a time per folder.

- A run folder carries a marker (common.train.checkpoints.RUN_MARKER) listing what runs wrote there. --overwrite
  and --resume accept only such folders (or one holding only what a run in progress writes before its first
  checkpoint marks it).
- `output_lock` keeps a second run out of a folder while one is writing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from common.errors import UserError
from common.train.checkpoints import (
    CHECKPOINT_NAME,
    EVENTS_PREFIX,
    RUN_CONFIG,
    RUN_MARKER,
    WHILE_TRAINING,
    checkpoint_dir,
    tensorboard_dir,
)


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
    return all(CHECKPOINT_NAME.fullmatch(p.name) for p in saved) and all(
        p.name.startswith(EVENTS_PREFIX) for p in logged
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
