"""Command-line flags shared by the recipes, and the wrapper that turns bad input into one clear line.

Each recipe builds its parser with `classification_parser` or `causal_lm_parser`, passing its own defaults,
so `--help` shows the values that recipe really uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from common.errors import UserError


class RecipeParser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + error on two lines; we keep to one
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # shown by argparse in "invalid <type> value" messages
    return parse


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _fraction(text):
    value = positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _steps_or_epoch(text):
    return "epoch" if text == "epoch" else positive(int)(text)


def _base_parser(doc: str) -> RecipeParser:
    parser = RecipeParser(description=doc, formatter_class=_HelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="embedded:NAME (offline, ships with the project), a local folder, or a hub id such as gpt2")
    model.add_argument("--freeze-layers", type=non_negative_int, default=0,
                       help="freeze the embeddings and the bottom N transformer blocks (0: train everything)")
    model.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=False,
                       help="freeze the token/position embeddings (the largest tensor of a small model; with tied "
                            "embeddings, a causal LM's output head too)")
    model.add_argument("--trust-remote-code", action="store_true", help="allow models that ship their own Python code")
    model.add_argument("--allow-pickle", action="store_true",
                       help="also read pickle weights (.bin), which can run code when loaded; default: safetensors only")

    data = parser.add_argument_group("data (files win over --dataset; missing validation/test splits are carved 80/10/10 from train)")
    data.add_argument("--dataset", help="embedded:NAME or a hub dataset name such as imdb (needs the hub)")
    data.add_argument("--dataset-config", help="hub dataset configuration name, if it has several")
    data.add_argument("--train-file", help="training data: .csv .json .jsonl .parquet, or .txt / a folder of .txt")
    data.add_argument("--validation-file", help="validation data in the same format")
    data.add_argument("--test-file", help="test data in the same format")
    data.add_argument("--max-train-samples", type=positive(int), help="train on at most this many examples (seeded sample)")
    data.add_argument("--max-eval-samples", type=positive(int), help="validate each epoch on at most this many examples")
    data.add_argument("--max-test-samples", type=positive(int), help="test on at most this many examples (none: the whole test split)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive(float), help="passes over the training data")
    train.add_argument("--lr", type=positive(float), help="peak learning rate (linear warmup, then linear decay)")
    train.add_argument("--batch-size", type=positive(int), help="examples per optimizer step")
    train.add_argument("--warmup", type=float, default=0.1, help="warmup: a fraction of the steps (<1) or a step count")
    train.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    train.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                       help="auto: bf16 autocast where the CPU/GPU runs it natively, else fp32")
    train.add_argument("--attention", choices=["auto", "sdpa", "eager"], default="auto",
                       help="attention kernel; auto: eager on a CPU for sequences up to 128 tokens (faster there), "
                            "else transformers' default (PyTorch's fused SDPA where the model has it)")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the model; on a 2-core CPU it compiled for 1-2.5 min and ran no faster "
                            "(benchmarks/), so it is off unless you measure a gain on your machine")
    train.add_argument("--seed", type=int, default=42, help="seeds the split, the sampling, the head init and the data order")
    train.add_argument("--logging-steps", type=positive(int), default=25, help="log the training loss every N steps")

    tech = parser.add_argument_group("techniques (see the README's Techniques section)")
    tech.add_argument("--gradual-unfreeze", type=_steps_or_epoch, metavar="N|epoch",
                      help="train the head alone first, then unfreeze one more block from the top every N steps (or epoch)")
    tech.add_argument("--layer-lr-decay", type=_fraction, metavar="D",
                      help="discriminative learning rates: block k from the top learns at lr * D**k (e.g. 0.8)")
    tech.add_argument("--lora-r", type=positive(int), metavar="R", help="train LoRA adapters of rank R instead of the weights")
    tech.add_argument("--lora-alpha", type=positive(float), default=16, help="LoRA scaling numerator (scale = alpha / r)")
    tech.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the LoRA branch")
    tech.add_argument("--merge-lora", action="store_true", help="save the model with the adapters merged in (a plain model)")
    tech.add_argument("--dropout", type=float, help="set every dropout probability of the model to this value")
    tech.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing factor for the loss (e.g. 0.1)")
    tech.add_argument("--scheduler", default="linear", choices=["linear", "cosine", "constant_with_warmup", "constant"],
                      help="learning-rate schedule after warmup")
    tech.add_argument("--eval-steps", type=positive(int), help="validate every N steps instead of every epoch")
    tech.add_argument("--early-stopping-patience", type=positive(int), metavar="N",
                      help="stop after N validations without improvement of --best-metric; the best model is kept")
    tech.add_argument("--search", choices=["grid", "random", "bayes"],
                      help="hyperparameter search over --search-space: every grid point, random draws, or optuna's TPE")
    tech.add_argument("--search-space", metavar="FILE", help="YAML/JSON: flag name -> list of values or {low, high[, log]}")
    tech.add_argument("--trials", type=positive(int), help="trials for --search (grid: every point unless fewer are asked for)")
    tech.add_argument("--best-metric", help="validation metric that early stopping watches (loss, accuracy, macro_f1, ...)")

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", help="where the model, tokenizer and metrics.json are saved")
    out.add_argument("--overwrite", action="store_true", help="replace the output folder if it already holds a run")
    out.add_argument("--save-steps", type=positive(int), metavar="N",
                     help="write a checkpoint every N steps into OUTPUT_DIR/checkpoints (the last two are kept), "
                          "so --resume can continue after a crash")
    out.add_argument("--resume", nargs="?", const="last", metavar="CHECKPOINT",
                     help="continue from the last complete checkpoint in --output-dir (or the CHECKPOINT folder "
                          "given): same data order, learning-rate schedule, optimizer and random state")
    out.add_argument("--report-to", choices=["none", "tensorboard"], default="none",
                     help="tensorboard: also log losses and metrics to OUTPUT_DIR/tensorboard (tensorboard --logdir OUTPUT_DIR)")
    out.add_argument("--config", metavar="FILE",
                     help="read flags from a YAML or JSON file (keys are flag names: lr, batch_size, ...); flags on "
                          "the command line win. A run's run_config.json works too, to repeat it")
    return parser


def classification_parser(doc: str, **defaults) -> RecipeParser:
    parser = _base_parser(doc)
    task = parser.add_argument_group("classification")
    task.add_argument("--text-column", nargs="+", default=["text"], metavar="COLUMN",
                      help="text column, or two columns for sentence pairs (paraphrase, entailment)")
    task.add_argument("--label-column", default="label", help="label column: strings or integers")
    task.add_argument("--max-length", type=positive(int), help="truncate each example to this many tokens")
    task.add_argument("--long-text", choices=["truncate", "head-tail", "sliding-window"], default="truncate",
                      help="texts beyond --max-length: keep the start, keep head and tail, or classify overlapping "
                           "windows and average them per document")
    task.add_argument("--stride", type=positive(int), default=32, help="tokens shared by neighbouring sliding windows")
    task.add_argument("--class-weights", metavar="auto|W1,W2,...",
                      help="weight the loss per class: auto (inverse frequency in the training split) or one number per class")
    task.add_argument("--augment", type=non_negative_int, default=0, metavar="N",
                      help="add N label-preserving variants of each training example (random word deletion/swap)")
    task.add_argument("--kfold", type=non_negative_int, default=0, metavar="K",
                      help="cross-validate: K models on stratified folds of all labelled rows, each tested on its own "
                           "fold; OUTPUT_DIR/report.md has every fold and the mean +- std (0: off)")
    task.add_argument("--explain", type=non_negative_int, default=0, metavar="N",
                      help="write explain.html: token attributions (gradient x input) for the first N test examples")
    parser.set_defaults(best_metric="accuracy", **defaults)
    return parser


def causal_lm_parser(doc: str, **defaults) -> RecipeParser:
    parser = _base_parser(doc)
    task = parser.add_argument_group("causal language modelling")
    task.add_argument("--text-column", default="text", help="text column, for table files and hub datasets")
    task.add_argument("--block-size", type=positive(int), help="tokens per training block (the corpus is cut into blocks)")
    task.add_argument("--packing", choices=["documents", "concat"], default="documents",
                      help="documents: positions restart at each document and documents in a block cannot attend to "
                           "each other; concat: plain concatenate-and-chunk (the standard examples' way)")
    task.add_argument("--lm-loss", choices=["chunked", "standard"], default="chunked",
                      help="chunked: in training, the output layer and cross-entropy run a chunk of tokens at a time "
                           "and never hold the [tokens x vocabulary] logits in fp32 (the same loss, faster); "
                           "standard: the model's own loss")
    task.add_argument("--prompt", help="after training, print a sample generated from this prompt")
    task.add_argument("--max-new-tokens", type=positive(int), default=60, help="length of the generated sample")
    parser.set_defaults(best_metric="loss", **defaults)
    return parser


# keys of a run_config.json that describe the run rather than ask for one
_NOT_FROM_CONFIG = {"config", "resume"}


def config_argv(path: str, parser: RecipeParser) -> list[str]:
    """The flags a --config file stands for, as command-line words, so they are checked like typed flags."""
    file = Path(path)
    if not file.is_file():
        parser.error(f"--config '{path}' does not exist")
    is_yaml = file.suffix in (".yaml", ".yml")
    try:
        if is_yaml:
            import yaml

            values = yaml.safe_load(file.read_text())
        else:
            values = json.loads(file.read_text())
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file, said in one line
        parser.error(f"--config '{path}' could not be read as {'YAML' if is_yaml else 'JSON'}: {str(e).splitlines()[0]}")
    if not isinstance(values, dict):
        parser.error(f"--config '{path}' must map flag names to values (lr: 1e-4, batch_size: 16, ...)")
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    unknown = sorted(k for k in values if k.replace("-", "_") not in actions)
    if unknown:
        parser.error(f"--config '{path}' has unknown keys: {', '.join(unknown)}; use flag names such as lr, batch_size "
                     f"(see --help)")
    words = []
    for key, value in values.items():
        action = actions[key.replace("-", "_")]
        flag = action.option_strings[0]
        if action.dest in _NOT_FROM_CONFIG or value is None:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            words.append(flag if value else "--no-" + flag[2:])
        elif action.nargs == 0:  # store_true
            words += [flag] if value else []
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return words


def parse(parser: RecipeParser, argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config")
    known, _ = config.parse_known_args(argv)
    if known.config:
        argv = config_argv(known.config, parser) + argv  # later words win: the command line overrides the file
    args = parser.parse_args(argv)
    if hasattr(args, "text_column") and isinstance(args.text_column, list) and len(args.text_column) > 2:
        parser.error("--text-column takes one column, or two for sentence pairs")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.lora_r and (args.gradual_unfreeze or args.layer_lr_decay):
        parser.error("--lora-r trains adapters, not layers: drop --gradual-unfreeze / --layer-lr-decay, or drop --lora-r")
    if args.merge_lora and not args.lora_r:
        parser.error("--merge-lora needs --lora-r (there are no adapters to merge)")
    if args.label_smoothing < 0 or args.label_smoothing >= 1:
        parser.error(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.search and not args.search_space:
        parser.error("--search needs --search-space FILE; configs/search/ has examples")
    if args.search and (getattr(args, "kfold", 0) or args.resume):
        parser.error("--search runs its own trials: drop --kfold / --resume")
    if getattr(args, "kfold", 0) == 1:
        parser.error("--kfold needs at least 2 folds")
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in --output-dir and --overwrite replaces it: pass only one")
    if args.early_stopping_patience and args.save_steps and (not args.eval_steps or args.save_steps % args.eval_steps):
        parser.error("--early-stopping-patience with --save-steps needs --eval-steps that divides --save-steps")
    return args


def without_flags(argv: list[str], flags: set[str]) -> list[str]:
    """argv minus the given flags and their values (`--flag v`, `--flag v1 v2` or `--flag=v`), for rerunning a
    recipe with those flags set otherwise (--kfold folds, --search trials)."""
    kept, skipping = [], False
    for word in argv:
        if skipping and not word.startswith("--"):
            continue
        skipping = False
        if word.split("=", 1)[0] in flags:
            skipping = "=" not in word
            continue
        kept.append(word)
    return kept


def setup_logging() -> None:
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun/accelerate launch: one process reports, the others stay quiet
        sys.stdout = open(os.devnull, "w")
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stdout)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # avoids the fork warning once DataLoader workers start
    warnings.filterwarnings("ignore", message=".*`torch_dtype` is deprecated.*")


def run(main, argv=None) -> None:
    """Run a recipe's main(): bad input (UserError) ends with one line on stderr and exit status 2."""
    setup_logging()
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
