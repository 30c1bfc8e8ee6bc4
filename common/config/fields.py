"""One run setting = one dataclass field: its flag, help text, choices and value check live in the field's metadata.

`option(...)` declares a field; `check_value` and `parse_text` read that metadata, so the same rule checks a
value typed on the command line, read from a --config file, or set in Python (`ClassificationConfig(...)`, common.tasks).
Every other rule about a setting is metadata too, read where it applies: whether --resume may change it
(common.run.resume), whether it names a file (common.config.cli), which TrainingArguments fields it sets
(common.train.arguments) and so refuses in --trainer-arg (common.config.trainer_args). A new setting is one field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from common.errors import UserError

# what --resume does with a setting whose value differs from the checkpoint's (option's `on_resume`)
MUST_MATCH, MAY_CHANGE, AUTO_MATCHES_ANY = "must match", "may change", "auto matches any"
ON_RESUME = (MUST_MATCH, MAY_CHANGE, AUTO_MATCHES_ANY)


def option(
    default,
    help: str,
    *,
    check=None,
    choices=None,
    metavar=None,
    nargs=None,
    const=None,
    from_file: bool = True,
    searchable: bool = True,
    repeatable: bool = False,
    on_resume: str = MUST_MATCH,
    is_path: bool = False,
    trainer_fields: tuple[str, ...] = (),
    replaces: tuple[str, ...] = (),
):
    """A run setting. `check(value)` returns None when the value is fine, else what is wrong ("must be ...");
    `from_file=False`: never taken from a --config file (it asks for an action, not a setting);
    `searchable=False`: --search-space may not vary it; `repeatable=True`: a list flag whose words add up over
    repeats (--trainer-arg a=1 --trainer-arg b=2), a --config file's words first.
    `on_resume`: MUST_MATCH (the run's own: --resume refuses a new value), MAY_CHANGE (where the run goes and what
    is reported after training), AUTO_MATCHES_ANY (`auto` resolves at run time and the checkpoint recorded the
    value it took); `is_path`: names a file or folder, which a --config file may give relative to itself;
    `trainer_fields`: the TrainingArguments fields common.train.arguments sets from it (a test varies the setting
    and sees each change); `replaces`: TrainingArguments fields whose job the run does itself with this setting
    (resume_from_checkpoint, hub_model_id). --trainer-arg refuses both kinds, naming this setting's flag."""
    if on_resume not in ON_RESUME:
        raise ValueError(f"on_resume must be one of {', '.join(ON_RESUME)}, got {on_resume!r}")
    metadata = dict(
        help=help,
        check=check,
        choices=choices,
        metavar=metavar,
        nargs=nargs,
        const=const,
        from_file=from_file,
        searchable=searchable,
        repeatable=repeatable,
        on_resume=on_resume,
        is_path=is_path,
        trainer_fields=tuple(trainer_fields),
        replaces=tuple(replaces),
    )
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def usage(field: dataclasses.Field) -> str:
    """How the setting is typed: --push-to-hub USER/NAME, --lr."""
    metavar = field.metadata.get("metavar")
    return f"{flag(field.name)} {metavar}" if metavar else flag(field.name)


# ---------------------------------------------------------------- value checks: None when fine, else the problem


def _number(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    return None


def positive(value) -> str | None:
    return _number(value) or (f"must be greater than 0, got {value}" if value <= 0 else None)


def tokens(value) -> str | None:
    """A length in tokens: an example needs room for its special tokens and some text."""
    return positive(value) or (f"must be at least 8 tokens, got {value}" if value < 8 else None)


def tokens_or_auto(value) -> str | None:
    return None if value == "auto" else tokens(value)


def class_weights(value) -> str | None:
    """auto, or positive numbers separated by commas (their count is checked against the classes later)."""
    if value is None or value == "auto":
        return None
    try:
        weights = [float(w) for w in str(value).split(",")]
    except ValueError:
        return f"takes 'auto' or numbers separated by commas, got {value!r}"
    problems = [p for p in map(positive, weights) if p]
    return f"each weight {problems[0]}" if problems else None


def valid_seed(value) -> str | None:
    """numpy, torch and Python's random all take a seed in [0, 2**32)."""
    return non_negative(value) or (f"must be below 2**32 = {2**32}, got {value}" if value >= 2**32 else None)


def non_negative(value) -> str | None:
    return _number(value) or (f"must be 0 or more, got {value}" if value < 0 else None)


def fraction(value) -> str | None:
    """(0, 1]"""
    return positive(value) or (f"must be in (0, 1], got {value}" if value > 1 else None)


def probability(value) -> str | None:
    """[0, 1)"""
    return _number(value) or (f"must be in [0, 1), got {value}" if not 0 <= value < 1 else None)


def steps_or_epoch(value) -> str | None:
    return None if value == "epoch" else positive(value)


def repo_id(value) -> str | None:
    """A hub repository id: NAME or OWNER/NAME, of letters, digits, '-', '_', '.' (the hub's own rule)."""
    import re

    if re.fullmatch(r"([A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]{0,95}", str(value)) and ".." not in str(value):
        return None
    return f"must be a hub repository id such as your-name/my-model, got {value!r}"


def one_or_two(value) -> str | None:
    return None if 1 <= len(value) <= 2 else "takes one column, or two for sentence pairs"


# ---------------------------------------------------------------- types


def value_type(annotation) -> type:
    """The type a field's values have, from its annotation: int | None -> int, list[str] -> str, int | str -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return value_type(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if typing.get_origin(annotation) is list:
        return value_type(typing.get_args(annotation)[0])
    return annotation


def is_list(annotation) -> bool:
    args = typing.get_args(annotation) if typing.get_origin(annotation) is not list else ()
    return typing.get_origin(annotation) is list or any(typing.get_origin(a) is list for a in args)


def parse_text(field: dataclasses.Field, kind: type, text: str):
    """A command-line word (or a string from a file) as the field's value; ValueError says why not."""
    check = field.metadata.get("check")
    if kind in (int, float) and check is not None and check(text) is None:  # a word the setting takes: auto, epoch
        return text
    if kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    return text


def check_value(field: dataclasses.Field, value) -> str | None:
    """What is wrong with `value` for this field, or None (None itself is always fine: 'not set')."""
    if value is None:
        return None
    choices = field.metadata.get("choices")
    values = value if isinstance(value, list) else [value]
    if choices and any(v not in choices for v in values):
        return f"must be one of {', '.join(map(str, choices))}, got {value!r}"
    check = field.metadata.get("check")
    if check is one_or_two:
        return check(values)
    for v in values:
        problem = check(v) if check else None
        if problem:
            return problem
    return None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)
