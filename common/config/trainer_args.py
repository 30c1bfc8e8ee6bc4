"""--trainer-arg KEY=VALUE: any other `TrainingArguments` field, for what the recipes have no flag of their own
(optim, max_grad_norm, lr_scheduler_kwargs, deepspeed, report_to=wandb, ...). A `trainer:` block of a --config
file becomes the same words.

Fields that one of our flags already sets are refused with that flag's name: two ways to set one thing would
disagree in run_config.json, and our flags mean something slightly different (--batch-size is the global batch).
"""

from __future__ import annotations

import dataclasses
import json

from common.config.fields import usage


def set_by_our_flags() -> dict[str, str]:
    """TrainingArguments field -> how the setting of ours that sets it (or does its job) is typed: read from the
    settings' `trainer_fields` and `replaces` (common.config.fields.option), over every group of every kind of run."""
    from common.config.groups.base import Group

    found, groups = {}, [Group]
    while groups:
        group = groups.pop()
        groups += group.__subclasses__()
        for field in dataclasses.fields(group) if dataclasses.is_dataclass(group) else ():
            for name in (*field.metadata.get("trainer_fields", ()), *field.metadata.get("replaces", ())):
                found[name] = usage(field)
    return found


# TrainingArguments fields the recipes cannot work with: refused before anything loads (they failed in evaluation)
REFUSED = {
    "prediction_loss_only": "the recipes' evaluation needs the predictions, not only the loss",
    "label_names": "the recipes name the label column themselves (labels)",
}


def split_trainer_arg(word: str) -> tuple[str, object]:
    """'max_grad_norm=0.5' -> ('max_grad_norm', 0.5). The value is read as JSON where it is JSON (numbers, true,
    {"num_cycles": 2}); anything else stays a string (adamw_torch_fused, wandb). ValueError says what is wrong."""
    key, equals, text = word.partition("=")
    key = key.strip().replace("-", "_")
    if not equals or not key:
        raise ValueError(f"takes KEY=VALUE words such as optim=adafactor, got {word!r}")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def trainer_arg_words(block: dict) -> list[str]:
    """A --config file's `trainer:` mapping as KEY=VALUE words (dicts and lists as JSON)."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in block.items()]


def check_trainer_arg(word: str) -> str | None:
    """None when `word` names a TrainingArguments field that no flag of ours sets, else what is wrong."""
    try:
        key, _ = split_trainer_arg(word)
    except ValueError as e:
        return str(e)
    ours = set_by_our_flags()
    if key in ours:
        return f"{key}: use {ours[key]}, which sets it for the recipes"
    if key in REFUSED:
        return f"{key}: {REFUSED[key]}; leave it out"
    fields = training_argument_names()
    if key not in fields:
        import difflib

        close = difflib.get_close_matches(key, sorted(fields), n=1)
        hint = f"did you mean {close[0]}?" if close else "see the TrainingArguments documentation for the names"
        return f"{key}: TrainingArguments has no such field; {hint}"
    return _refused_value(word)


def _refused_value(word: str) -> str | None:
    """TrainingArguments' own complaint about this one value, if any (optim=nonsense): before any data loads."""
    import tempfile

    from transformers import Trainer, TrainingArguments

    from common.errors import first_line

    try:
        overrides = trainer_overrides([word])
        arguments = TrainingArguments(output_dir=tempfile.gettempdir(), **overrides)
        if "optim" in overrides:  # an optimizer whose package is missing fails only when built
            Trainer.get_optimizer_cls_and_kwargs(arguments)
    except (ValueError, TypeError, ImportError) as e:
        return first_line(e)
    return None


def scheduler_kwargs_problem(scheduler: str, words: list[str]) -> str | None:
    """What is wrong with lr_scheduler_kwargs among the --trainer-arg `words` for the --scheduler `scheduler` (a
    keyword its schedule function does not take fails only when training starts), or None."""
    kwargs = trainer_overrides(words).get("lr_scheduler_kwargs")
    if not kwargs:
        return None
    if not isinstance(kwargs, dict):
        return 'lr_scheduler_kwargs: give a JSON object such as {"num_cycles": 2}'
    import inspect

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    from transformers.trainer_utils import SchedulerType

    parameters = inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(scheduler)]).parameters
    if "kwargs" in parameters:
        return None
    takes = [p for p in parameters if p not in ("optimizer", "num_warmup_steps", "num_training_steps", "last_epoch")]
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        return (
            f"lr_scheduler_kwargs: the {scheduler} schedule takes no {', '.join(unknown)} "
            f"({'it takes ' + ', '.join(takes) if takes else 'it takes none'}); choose a --scheduler that does "
            f"(num_cycles: cosine)"
        )
    return None


def trainer_overrides(words: list[str]) -> dict:
    """The --trainer-arg words as TrainingArguments keyword arguments; a later word for the same key wins."""
    return dict(split_trainer_arg(word) for word in words)


def training_argument_names() -> set[str]:
    from transformers import TrainingArguments  # only when --trainer-arg is given: --help must not wait for it

    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
