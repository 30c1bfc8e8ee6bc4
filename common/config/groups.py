"""The groups of settings a run is made of, one dataclass per concern, with a subclass where a task adds some.

Each field is a run setting declared with common.config.fields.option: its flag, help, choices and check.
common.config.schema puts the groups together into the run configuration of each task.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config.fields import (
    class_weights,
    fraction,
    non_negative,
    one_or_two,
    option,
    positive,
    probability,
    repo_id,
    require,
    steps_or_epoch,
    tokens,
    tokens_or_auto,
    valid_seed,
)
from common.config.trainer_args import check_trainer_arg

SCHEDULES = ["linear", "cosine", "constant_with_warmup", "constant"]
# what a classifier's validation reports (common.evaluate.metrics.classification_scores; a test keeps them equal)
CLASSIFICATION_METRICS = ["loss", "accuracy", "macro_f1", "macro_precision", "macro_recall", "mcc", "roc_auc"]
CLASSIFICATION_METRICS += ["weighted_f1", "weighted_precision", "weighted_recall"]


class Group:
    """A group of settings; `check()` holds the rules between its settings (none unless a group has some)."""

    def check(self) -> None:
        return None


@dataclass(frozen=True)
class ModelConfig(Group):
    """model"""

    model: str | None = option(
        None, "embedded:NAME (offline, ships with the project), a local folder, or a hub id such as gpt2"
    )
    trust_remote_code: bool = option(False, "allow models that ship their own Python code")
    allow_pickle: bool = option(
        False, "also read pickle weights (.bin), which can run code when loaded; default: safetensors only"
    )
    attention: str = option(
        "auto",
        "attention kernel; auto: eager on a CPU for sequences up to 128 tokens (faster "
        "there), else transformers' default (PyTorch's fused SDPA where the model has it)",
        choices=["auto", "sdpa", "eager"],
    )


@dataclass(frozen=True)
class DataConfig(Group):
    """data (files win over --dataset; missing validation/test splits are carved 80/10/10 from train)"""

    dataset: str | None = option(None, "embedded:NAME or a hub dataset name such as imdb (needs the hub)")
    dataset_config: str | None = option(None, "hub dataset configuration name, if it has several")
    train_file: str | None = option(None, "training data: .csv .json .jsonl .parquet, or .txt / a folder of .txt")
    validation_file: str | None = option(None, "validation data in the same format")
    test_file: str | None = option(None, "test data in the same format")
    max_train_samples: int | None = option(None, "train on at most this many examples (seeded sample)", check=positive)
    max_eval_samples: int | None = option(None, "validate each epoch on at most this many examples", check=positive)
    max_test_samples: int | None = option(
        None, "test on at most this many examples (none: the whole test split)", check=positive
    )

    def check(self) -> None:
        require(
            bool(self.train_file) or not (self.validation_file or self.test_file),
            "--validation-file/--test-file need a --train-file too; add --train-file",
        )


@dataclass(frozen=True)
class ClassificationData(DataConfig):
    text_column: list[str] = option(
        ["text"],
        "text column, or two columns for sentence pairs (paraphrase, entailment)",
        nargs="+",
        metavar="COLUMN",
        check=one_or_two,
    )
    label_column: str = option("label", "label column: strings or integers")
    max_length: int | str = option(
        "auto",
        "tokens per example, longer ones are cut (see --long-text); auto: the length that keeps 199 in 200 "
        "training texts whole, rounded up to 8, at most 512 and what the model reads (logged)",
        check=tokens_or_auto,
        metavar="N|auto",
    )
    long_text: str = option(
        "truncate",
        "texts beyond --max-length: keep the start, keep head and tail, or classify "
        "overlapping windows and average them per document",
        choices=["truncate", "head-tail", "sliding-window"],
    )
    stride: int = option(32, "tokens shared by neighbouring sliding windows", check=positive)
    augment: int = option(
        0,
        "add N label-preserving variants of each training example (random word deletion/swap)",
        check=non_negative,
        metavar="N",
    )

    def check(self) -> None:
        super().check()
        require(
            self.label_column not in self.text_column,
            f"--label-column '{self.label_column}' is also a --text-column: the model would read the answer; "
            f"choose the column that holds the text",
        )


@dataclass(frozen=True)
class CorpusData(DataConfig):
    text_column: str = option("text", "text column, for table files and hub datasets")
    block_size: int | None = option(None, "tokens per training block (the corpus is cut into blocks)", check=tokens)
    packing: str = option(
        "documents",
        "documents: positions restart at each document and documents in a block cannot "
        "attend to each other; concat: plain concatenate-and-chunk (the standard "
        "examples' way)",
        choices=["documents", "concat"],
    )


@dataclass(frozen=True)
class TrainingConfig(Group):
    """training"""

    epochs: float | None = option(None, "passes over the training data", check=positive)
    lr: float | None = option(None, "peak learning rate (linear warmup, then linear decay)", check=positive)
    batch_size: int | None = option(None, "examples per optimizer step", check=positive)
    grad_accum: int = option(
        1,
        "split each step's --batch-size into N micro-batches whose gradients add up (the same step in less "
        "memory: --batch-size 64 --grad-accum 4 runs 16 examples at a time)",
        check=positive,
        metavar="N",
    )
    warmup: float = option(0.1, "warmup: a fraction of the steps (<1) or a step count", check=non_negative)
    weight_decay: float = option(0.01, "AdamW weight decay", check=non_negative)
    scheduler: str = option("linear", "learning-rate schedule after warmup", choices=SCHEDULES)
    precision: str = option(
        "auto",
        "auto: bf16 autocast where the CPU/GPU runs it natively, else fp32",
        choices=["auto", "bf16", "fp16", "fp32"],
    )
    compile: bool = option(
        False,
        "torch.compile the model: on a GPU it doubled the causal LM's step rate after ~60 s of compiling (H100); on "
        "a 2-core CPU it compiled for 1-2.5 min and ran no faster. The compile time is logged",
    )
    gradient_checkpointing: bool = option(
        False,
        "recompute each block's activations in the backward pass instead of keeping them: much less memory for "
        "long sequences or large batches, for about a third more compute per step",
    )
    seed: int = option(42, "seeds the split, the sampling, the head init and the data order", check=valid_seed)
    logging_steps: int | None = option(
        None,
        "log the training loss every N steps (default: 25, or fewer in a short run, so that its curve has 10 "
        "points or more)",
        check=positive,
        metavar="N",
    )
    eval_steps: int | None = option(None, "validate every N steps instead of every epoch", check=positive)
    early_stopping_patience: int | None = option(
        None,
        "stop after N validations without improvement of --best-metric; the best model is kept",
        check=positive,
        metavar="N",
    )
    best_metric: str = option(
        "accuracy",
        "validation metric that early stopping and --search watch: " + ", ".join(CLASSIFICATION_METRICS),
        choices=CLASSIFICATION_METRICS,
        metavar="METRIC",
    )

    trainer_arg: list[str] = option(
        [],
        "any other TrainingArguments field, e.g. --trainer-arg optim=adafactor max_grad_norm=0.5 "
        "'lr_scheduler_kwargs={\"num_cycles\": 2}' (values are read as JSON where they are JSON); repeatable; "
        "in a --config file, a trainer: block",
        metavar="KEY=VALUE",
        check=check_trainer_arg,
        repeatable=True,
        searchable=False,
    )

    def check(self) -> None:
        if self.precision == "fp16":  # checked here, before any data or model is loaded
            import torch

            require(torch.cuda.is_available(), "--precision fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")

    @property
    def greater_is_better(self) -> bool:
        return self.best_metric not in ("loss", "perplexity")


@dataclass(frozen=True)
class CausalLMTraining(TrainingConfig):
    best_metric: str = option(
        "loss", "validation metric that early stopping and --search watch", choices=["loss", "next_token_accuracy"]
    )
    lm_loss: str = option(
        "auto",
        "chunked: in training, the output layer and cross-entropy run a chunk of tokens at a time and never hold "
        "the [tokens x vocabulary] logits in fp32 (the same loss; faster on a CPU, 20%% slower on a GPU); "
        "standard: the model's own loss; auto: chunked on a CPU, standard on a GPU",
        choices=["auto", "chunked", "standard"],
    )

    @property
    def chunked_lm_loss(self) -> bool:
        if self.compile:  # the chunked loss is a Python loop: not under compile
            return False
        if self.lm_loss == "auto":
            import torch  # here, not at the top: --help must not wait for torch

            return not torch.cuda.is_available()
        return self.lm_loss == "chunked"


@dataclass(frozen=True)
class Techniques(Group):
    """techniques (see the README's Techniques section)"""

    freeze_layers: int = option(
        0, "freeze the embeddings and the bottom N transformer blocks (0: train everything)", check=non_negative
    )
    freeze_embeddings: bool = option(
        False,
        "freeze the token/position embeddings (the largest tensor of a small model; "
        "with tied embeddings, a causal LM's output head too)",
    )
    gradual_unfreeze: int | str | None = option(
        None,
        "train the head alone first, then unfreeze one more block from the top every N steps (or epoch)",
        check=steps_or_epoch,
        metavar="N|epoch",
    )
    layer_lr_decay: float | None = option(
        None,
        "discriminative learning rates: block k from the top learns at lr * D**k (e.g. 0.8)",
        check=fraction,
        metavar="D",
    )
    lora_r: int | None = option(
        None, "train LoRA adapters of rank R instead of the weights", check=positive, metavar="R"
    )
    lora_alpha: float = option(16.0, "LoRA scaling numerator (scale = alpha / r)", check=positive)
    lora_dropout: float = option(0.05, "dropout on the LoRA branch", check=probability)
    merge_lora: bool = option(False, "save the model with the adapters merged in (a plain model)")
    dropout: float | None = option(None, "set every dropout probability of the model to this value", check=probability)
    label_smoothing: float = option(0.0, "label smoothing factor for the loss (e.g. 0.1)", check=probability)

    def check(self) -> None:
        require(
            not (self.lora_r and (self.gradual_unfreeze or self.layer_lr_decay)),
            "--lora-r trains adapters, not layers: drop --gradual-unfreeze / --layer-lr-decay, or drop --lora-r",
        )
        require(
            not (self.merge_lora and not self.lora_r), "--merge-lora needs --lora-r (there are no adapters to merge)"
        )


LOSSES = ["cross-entropy", "focal"]  # common.train.losses.LOSSES holds the implementations; a test keeps them equal


@dataclass(frozen=True)
class ClassificationTechniques(Techniques):
    loss: str = option(
        "cross-entropy",
        "the training loss: cross-entropy, or focal (down-weights examples the model "
        "already gets right; for imbalanced or noisy labels)",
        choices=LOSSES,
    )
    focal_gamma: float = option(
        2.0, "focal loss: how strongly easy examples are down-weighted (0: plain cross-entropy)", check=non_negative
    )
    class_weights: str | None = option(
        None,
        "weight the loss per class: auto (inverse frequency in the training split) or one number per class",
        metavar="auto|W1,W2,...",
        check=class_weights,
    )


@dataclass(frozen=True)
class OutputConfig(Group):
    """output"""

    output_dir: str | None = option(None, "where the model, tokenizer and metrics.json are saved", searchable=False)
    overwrite: bool = option(
        False, "replace the output folder if it already holds a run", from_file=False, searchable=False
    )
    save_steps: int | None = option(
        None,
        "write a checkpoint every N steps into OUTPUT_DIR/checkpoints (the last two "
        "are kept), so --resume can continue after a crash",
        check=positive,
        metavar="N",
    )
    resume: str | None = option(
        None,
        "continue from the last complete checkpoint in --output-dir (or the CHECKPOINT "
        "folder given): same data order, learning-rate schedule, optimizer and random "
        "state",
        nargs="?",
        const="last",
        metavar="CHECKPOINT",
        from_file=False,
        searchable=False,
    )
    push_to_hub: str | None = option(
        None,
        "after saving, upload the output folder to this hub repository (created if missing; needs `hf auth login` "
        "or HF_TOKEN); the model card's load snippet names it",
        metavar="USER/NAME",
        check=repo_id,
        from_file=False,
        searchable=False,
    )
    report_to: str = option(
        "none",
        "tensorboard: also log losses and metrics to OUTPUT_DIR/tensorboard (tensorboard --logdir OUTPUT_DIR)",
        choices=["none", "tensorboard"],
    )

    def check(self) -> None:
        require(
            not (self.resume and self.overwrite),
            "--resume continues the run in --output-dir and --overwrite replaces it: pass only one",
        )


@dataclass(frozen=True)
class ClassificationOutput(OutputConfig):
    explain: int = option(
        0,
        "write explain.html: token attributions (gradient x input) for the first N test examples",
        check=non_negative,
        metavar="N",
    )


@dataclass(frozen=True)
class CausalLMOutput(OutputConfig):
    prompt: str | None = option(None, "after training, print a sample generated from this prompt")
    max_new_tokens: int = option(60, "length of the generated sample", check=positive)


@dataclass(frozen=True)
class Runs(Group):
    """several runs: hyperparameter search"""

    search: str | None = option(
        None,
        "hyperparameter search over --search-space: every grid point, random draws, or optuna's TPE",
        choices=["grid", "random", "bayes"],
        searchable=False,
    )
    search_space: str | None = option(
        None, "YAML/JSON: flag name -> list of values or {low, high[, log]}", metavar="FILE", searchable=False
    )
    trials: int | None = option(
        None, "trials for --search (grid: every point unless fewer are asked for)", check=positive, searchable=False
    )

    def check(self) -> None:
        require(
            not (self.search and not self.search_space),
            "--search needs --search-space FILE; configs/search/ has examples",
        )


@dataclass(frozen=True)
class ClassificationRuns(Runs):
    """several runs: cross-validation and hyperparameter search"""

    kfold: int = option(
        0,
        "cross-validate: K models on stratified folds of all labelled rows, each tested on its own "
        "fold; OUTPUT_DIR/report.md has every fold and the mean +- std (0: off)",
        check=non_negative,
        metavar="K",
        searchable=False,
    )

    def check(self) -> None:
        super().check()
        require(self.kfold != 1, "--kfold needs at least 2 folds")
        require(not (self.search and self.kfold), "--search runs its own trials: drop --kfold")
