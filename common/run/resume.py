"""--resume: the checkpoint a run continues from, and the settings it must continue with.

The last complete checkpoint that is intact (common.train.checkpoints.damage passes over a damaged one), or the
one given; refused when the run's settings differ from those the checkpoint recorded, or when its weights are
pickle and --allow-pickle was not given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from common.config import RunConfig
from common.config.fields import AUTO_MATCHES_ANY, MAY_CHANGE, MUST_MATCH
from common.errors import UserError
from common.train.checkpoints import COMPLETE, RUN_CONFIG, checkpoint_dir, damage, last_complete_checkpoint

logger = logging.getLogger(__name__)


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
    (a new --batch-size or --lr would be half-applied, a new --model would not fit the weights). Each setting's
    `on_resume` (common.config.fields.option) says whether it must match; a setting the run no longer has must."""
    try:
        saved = json.loads((checkpoint / RUN_CONFIG).read_text())
    except FileNotFoundError:
        return  # a checkpoint from elsewhere (Trainer's own): nothing recorded to compare with
    except ValueError:
        raise UserError(f"--resume: '{checkpoint / RUN_CONFIG}' is damaged; pass another checkpoint") from None
    now = json.loads(json.dumps(config.flat(), default=str))
    # a setting newer than the checkpoint was, in effect, at its default then
    saved = {**json.loads(json.dumps(type(config)().flat(), default=str)), **saved}
    rule = {name: field.metadata["on_resume"] for name, (_, field, _) in type(config).settings().items()}
    changed = [
        f"--{name.replace('_', '-')} {now.get(name)} (was {saved.get(name)})"
        for name in sorted(set(now) | set(saved))
        if now.get(name) != saved.get(name)
        and rule.get(name, MUST_MATCH) != MAY_CHANGE
        and not (rule.get(name) == AUTO_MATCHES_ANY and now.get(name) == "auto")
    ]
    if changed:
        raise UserError(
            f"--resume continues the run as it was started, but these settings differ from its checkpoint: "
            f"{', '.join(changed)}; drop them, or start a new run (--overwrite or another --output-dir)"
        )
