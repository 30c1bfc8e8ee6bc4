"""The command line of a recipe, generated from its run configuration: flags, --help, --config files.

`parse(DEFAULTS, argv)` builds an argparse parser from the dataclasses of common.config.schema, with the
recipe's DEFAULTS as the defaults that --help shows, reads --config (YAML/JSON, keys are flag names; the
command line wins) and returns a checked config of the same class. Bad input ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.config.fields import check_value, flag, is_list, parse_text, positive, value_type
from common.config.files import read_mapping
from common.config.schema import RunConfig
from common.config.trainer_args import trainer_arg_words, training_argument_names
from common.errors import UserError

# The HF examples' spellings (run_glue.py, run_clm.py, TrainingArguments) of settings that mean the same here.
# Any flag of ours is also read with underscores (--max_train_samples, --output_dir, --block_size).
HF_SPELLINGS = {
    "--learning_rate": "--lr",
    "--num_train_epochs": "--epochs",
    "--gradient_accumulation_steps": "--grad-accum",
    "--model_name_or_path": "--model",
    "--dataset_name": "--dataset",
    "--dataset_config_name": "--dataset-config",
    "--max_seq_length": "--max-length",
    "--warmup_ratio": "--warmup",
    "--warmup_steps": "--warmup",
    "--lr_scheduler_type": "--scheduler",
    "--overwrite_output_dir": "--overwrite",
}
# Their spellings of what works differently here: answered with our way, not read
HF_DIFFERENT = {
    "--per_device_train_batch_size": "--batch-size (examples per optimizer step, over all processes)",
    "--per_device_eval_batch_size": "--batch-size (evaluation runs batches of twice that)",
    "--bf16": "--precision bf16",
    "--fp16": "--precision fp16",
    "--do_train": "nothing: every run trains, validates and tests",
    "--do_eval": "nothing: every run trains, validates and tests",
    "--do_predict": "nothing: every run trains, validates and tests",
    "--report_to": "--report-to tensorboard",
}
# one recipe's flag given to another: the flag there for the same idea
OTHER_RECIPE = {"--max-length": "--block-size", "--max_seq_length": "--block-size", "--block-size": "--max-length"}


def hf_spellings(argv: list[str], known: set[str]) -> list[str]:
    """Words in the HF examples' spellings (or ours with underscores) rewritten to the flags of this parser."""
    rewritten = []
    for word in argv:
        name, equals, value = word.partition("=")
        if word.startswith("--") and name not in known:
            target = HF_SPELLINGS.get(name, name.replace("_", "-"))
            name = target if target in known else name
        rewritten.append(name + equals + value)
    return rewritten


class RecipeParser(argparse.ArgumentParser):
    def flags(self) -> set[str]:
        return {option for action in self._actions for option in action.option_strings}

    def parse_args(self, args=None, namespace=None):
        words = sys.argv[1:] if args is None else list(args)
        return super().parse_args(hf_spellings(words, self.flags()), namespace)

    def error(self, message):  # argparse prints usage + error on two lines; we keep to one
        if message.startswith("unrecognized arguments: "):
            message += self._did_you_mean(message.removeprefix("unrecognized arguments: ").split())
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    def _did_you_mean(self, words: list[str]) -> str:
        import difflib

        flags, hints = self.flags(), []
        for word in (w.partition("=")[0] for w in words if w.startswith("-")):
            if word in HF_DIFFERENT:
                hints.append(f"{word}: use {HF_DIFFERENT[word]}")
                continue
            if OTHER_RECIPE.get(word) in flags:
                hints.append(f"{word}: this recipe's flag for it is {OTHER_RECIPE[word]}")
                continue
            close = difflib.get_close_matches(word.replace("_", "-"), sorted(flags), n=1, cutoff=0.6)
            if word.startswith("--") and word[2:].replace("-", "_") in training_argument_names():
                hints.append(f"{word}: pass it as --trainer-arg {word[2:].replace('-', '_')}=VALUE")
            elif close:
                hints.append(f"{word}: did you mean {close[0]}?")
        return "; " + "; ".join(hints) if hints else ""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _word_parser(name: str, field, kind: type):
    """argparse `type=`: a word -> the field's value, checked by the field's own rule."""

    def parse(text):
        try:
            value = parse_text(field, kind, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        problem = check_value(field, value) if field.metadata.get("choices") is None else None
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # shown by argparse in "invalid <type> value" messages
    return parse


def positive_number(kind: type, check=positive):
    """argparse `type=` for a number above 0, or passing another `check` of common.config.fields (commands other
    than the recipes: predict, serve)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        problem = check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__
    return parse


def _title(group_class: type, default: str) -> str:
    """A --help group's title: the group class's docstring, or its parent's (dataclass makes up a signature
    docstring for a class without one, which is no title)."""
    for cls in group_class.__mro__:
        doc = cls.__dict__.get("__doc__")
        if doc and not doc.startswith(cls.__name__ + "("):
            return doc.strip()
    return default


def build_parser(defaults: RunConfig, description: str | None = None) -> RecipeParser:
    """One flag per setting, in one --help group per configuration group, defaults from `defaults`."""
    parser = RecipeParser(description=description, formatter_class=_HelpFormatter, allow_abbrev=False)
    groups: dict[str, argparse._ArgumentGroup] = {}
    values = defaults.flat()
    for name, (group, field, annotation) in defaults.settings().items():
        if group not in groups:
            groups[group] = parser.add_argument_group(_title(type(getattr(defaults, group)), group))
        kind = value_type(annotation)
        meta = field.metadata
        if kind is bool:
            groups[group].add_argument(
                flag(name), action=argparse.BooleanOptionalAction, default=values[name], help=meta["help"]
            )
            continue
        kwargs = dict(
            default=values[name],
            help=meta["help"],
            metavar=meta["metavar"],
            choices=meta["choices"],
            type=_word_parser(name, field, kind),
        )
        if meta["repeatable"]:
            kwargs.update(action="extend", nargs="+")
        elif meta["nargs"] is not None:
            kwargs["nargs"] = meta["nargs"]
        elif is_list(annotation):
            kwargs["nargs"] = "+"
        if meta["const"] is not None:
            kwargs["const"] = meta["const"]
        groups[group].add_argument(flag(name), **kwargs)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read settings from a YAML or JSON file (keys are flag names: lr, batch_size, ...); flags "
        "on the command line win. A run's run_config.json works too, to repeat it",
    )
    return parser


def answer_help(defaults: RunConfig, description: str | None = None) -> None:
    """With -h/--help on the command line: print the help from the configuration alone and exit. A recipe calls
    this before it imports torch and transformers, whose seconds of loading --help does not need."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        build_parser(defaults, description).print_help()
        sys.exit(0)


def read_config_file(path: str, defaults: RunConfig) -> dict:
    """A --config file as {name: value}; one clear line for a missing or unreadable file. A setting that names a
    file or folder (`is_path`) may be given relative to the config file's folder."""
    file = Path(path)
    values = read_mapping(path, "--config", "settings (lr: 1e-4, batch_size: 16, ...)")
    if values is None:  # empty, or only comments (a config of variants with every key commented out)
        values = {}
    values = {key.replace("-", "_"): value for key, value in values.items()}
    paths = [name for name, (_, field, _) in defaults.settings().items() if field.metadata["is_path"]]
    for key in paths:  # relative to where the run starts, or else to the config file's folder
        value = values.get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and not Path(value).exists():
            beside = file.parent / value
            if beside.exists():
                values[key] = str(beside)
    return values


def file_argv(path: str, defaults: RunConfig) -> list[str]:
    """The settings of a --config file as command-line words, so they are parsed and checked like typed flags.
    Settings that ask for an action (--resume, --overwrite) are never taken from a file."""
    values = read_config_file(path, defaults)
    task = values.pop("task", defaults.task)
    if task != defaults.task:
        raise UserError(
            f"--config '{path}' is for a {task} run and this recipe is {defaults.task}; use a config of this recipe"
        )
    settings = defaults.settings()
    block = values.pop("trainer", None)  # TrainingArguments fields, as --trainer-arg words
    if block is not None:
        if not isinstance(block, dict):
            raise UserError(
                f"--config '{path}': trainer: must map TrainingArguments fields to values (optim: adafactor, ...)"
            )
        values["trainer_arg"] = [*(values.get("trainer_arg") or []), *trainer_arg_words(block)]
    for key in [k for k in values if k not in settings]:  # the HF examples' names for the same settings
        ours = HF_SPELLINGS.get("--" + key, "").removeprefix("--").replace("-", "_")
        if ours in settings and ours not in values:
            values[ours] = values.pop(key)
    unknown = sorted(k for k in values if k not in settings)
    if unknown:
        raise UserError(
            f"--config '{path}' has unknown keys: {', '.join(unknown)}; use flag names such as lr, "
            f"batch_size (see --help)"
        )
    words = []
    for name, value in values.items():
        _, field, annotation = settings[name]
        if value is None or value == [] or not field.metadata["from_file"]:
            continue
        if value_type(annotation) is bool:
            words.append(flag(name) if value else "--no-" + flag(name)[2:])
        elif isinstance(value, list) and not (is_list(annotation) or field.metadata["repeatable"]):
            raise UserError(f"--config '{path}': {name} takes one value, not a list ({value!r})")
        elif isinstance(value, list):
            flagged = [str(item) for item in value if str(item).startswith("-") and not _is_number(str(item))]
            if flagged:  # it would be read as a flag: a file's value must never turn into an action (--overwrite)
                raise UserError(
                    f"--config '{path}': {name}: the value {flagged[0]!r} starts with '-'; a file gives values, "
                    f"not flags (pass flags on the command line)"
                )
            words += [flag(name), *map(str, value)]
        else:
            words.append(f"{flag(name)}={value}")  # `=`: a value may start with '-' (a negative number, a prompt)
    return words


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse(defaults: RunConfig, argv: list[str] | None = None, description: str | None = None) -> RunConfig:
    """`defaults` with the command line (and a --config file under it) applied, checked."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(defaults, description)
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config")
    known, _ = config_only.parse_known_args(argv)
    try:
        if known.config:
            argv = file_argv(known.config, defaults) + argv  # later words win: the command line overrides the file
        values = vars(parser.parse_args(argv))
        values.pop("config")
        return defaults.derive(**values)
    except UserError as e:
        parser.error(str(e))
