"""training: the optimizer, schedule, precision, evaluation cadence, and any other TrainingArguments field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from common.config.fields import (
    AUTO_MATCHES_ANY,
    MAY_CHANGE,
    non_negative,
    option,
    positive,
    require,
    valid_seed,
)
from common.config.groups.base import Group
from common.config.trainer_args import check_trainer_arg, scheduler_kwargs_problem

SCHEDULES = ["linear", "cosine", "constant_with_warmup", "constant"]
# what a classifier's validation reports (common.evaluate.metrics.classification_scores; a test keeps them equal)
CLASSIFICATION_METRICS = ["loss", "accuracy", "macro_f1", "macro_precision", "macro_recall", "mcc", "roc_auc"]
CLASSIFICATION_METRICS += ["weighted_f1", "weighted_precision", "weighted_recall"]


@dataclass(frozen=True)
class TrainingConfig(Group):
    """training"""

    # fewer optimizer steps than this get a warning before training: 4 steps of a 150-row run had left a new
    # classification head at chance (every predicted probability 0.33-0.37, 3 classes) with nothing said
    enough_steps: ClassVar[int] = 50

    epochs: float | None = option(
        None, "passes over the training data", check=positive, trainer_fields=("num_train_epochs",)
    )
    lr: float | None = option(
        None,
        "peak learning rate (linear warmup, then linear decay)",
        check=positive,
        trainer_fields=("learning_rate",),
    )
    batch_size: int | None = option(
        None,
        "examples per optimizer step",
        check=positive,
        # the global batch: split over processes and --grad-accum micro-batches (common.train.arguments)
        trainer_fields=("per_device_train_batch_size", "per_device_eval_batch_size"),
    )
    grad_accum: int = option(
        1,
        "split each step's --batch-size into N micro-batches whose gradients add up (the same step in less "
        "memory: --batch-size 64 --grad-accum 4 runs 16 examples at a time)",
        check=positive,
        metavar="N",
        trainer_fields=("gradient_accumulation_steps",),
    )
    warmup: float = option(
        0.1,
        "warmup: a fraction of the steps (<1) or a step count",
        check=non_negative,
        trainer_fields=("warmup_steps",),  # transformers 5 reads a fraction there
        replaces=("warmup_ratio",),  # transformers 4's field for the fraction
    )
    weight_decay: float = option(0.01, "AdamW weight decay", check=non_negative, trainer_fields=("weight_decay",))
    scheduler: str = option(
        "linear", "learning-rate schedule after warmup", choices=SCHEDULES, trainer_fields=("lr_scheduler_type",)
    )
    precision: str = option(
        "auto",
        "auto: bf16 autocast where the CPU/GPU runs it natively and a micro-batch has the matmul work to pay for "
        "its casts (on a CPU from ~5e8 FLOPs; on a GPU from ~1e12, since the classifiers' default batches ran "
        "faster in fp32 on an H100); else fp32, with TF32 matmuls on a GPU. The log says what auto took",
        choices=["auto", "bf16", "fp16", "fp32"],
        trainer_fields=("bf16", "fp16"),
    )
    compile: bool = option(
        False,
        "torch.compile the model: on a GPU it doubled the causal LM's step rate after ~60 s of compiling (H100); on "
        "a 2-core CPU it compiled for 1-2.5 min and ran no faster. The compile time is logged",
        trainer_fields=("torch_compile",),
    )
    gradient_checkpointing: bool = option(
        False,
        "recompute each block's activations in the backward pass instead of keeping them: much less memory for "
        "long sequences or large batches, for about a third more compute per step",
        trainer_fields=("activation_checkpointing",),
        replaces=("gradient_checkpointing",),  # the older name of the same thing
    )
    seed: int = option(
        42,
        "seeds the split, the sampling, the head init and the data order",
        check=valid_seed,
        trainer_fields=("seed", "data_seed"),
    )
    logging_steps: int | None = option(
        None,
        "log the training loss every N steps (default: 25, or fewer in a short run, so that its curve has 10 "
        "points or more)",
        check=positive,
        metavar="N",
        on_resume=MAY_CHANGE,
        trainer_fields=("logging_steps",),
    )
    eval_steps: int | None = option(
        None, "validate every N steps instead of every epoch", check=positive, trainer_fields=("eval_steps",)
    )
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
        trainer_fields=("metric_for_best_model",),  # with --early-stopping-patience
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
        if self.trainer_arg:
            problem = scheduler_kwargs_problem(self.scheduler, self.trainer_arg)
            require(problem is None, f"--trainer-arg {problem}")
        if self.precision == "fp16":  # checked here, before any data or model is loaded
            from common.runtime import on_gpu  # the hardware facts (it imports torch, which --help need not wait for)

            require(on_gpu(), "--precision fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")

    @property
    def greater_is_better(self) -> bool:
        return self.best_metric not in ("loss", "perplexity")

    def more_steps(self, examples: int, epochs: float, batch: int) -> list[str]:
        """The flags that give a run of `examples` training examples enough_steps optimizer steps or more."""
        fixes = []
        smaller = 2 ** int(math.log2(max(1, examples * epochs // self.enough_steps)))
        if smaller < batch:
            fixes.append(f"--batch-size {smaller}")
        return [*fixes, f"--epochs {math.ceil(self.enough_steps / math.ceil(examples / batch))}"]


@dataclass(frozen=True)
class CausalLMTraining(TrainingConfig):
    # a pretrained LM going on with text has no new head to fit: the causal LM's default run, 20 steps (160 blocks
    # of 256 tokens, batch 8), cuts held-out perplexity 45.2 -> 31.3; more text, not more epochs, lowers it further
    enough_steps: ClassVar[int] = 20

    best_metric: str = option(
        "loss",
        "validation metric that early stopping and --search watch",
        choices=["loss", "next_token_accuracy"],
        trainer_fields=("metric_for_best_model",),  # with --early-stopping-patience
    )
    lm_loss: str = option(
        "auto",
        "chunked: in training, the output layer and cross-entropy run a chunk of tokens at a time and never hold "
        "the [tokens x vocabulary] logits in fp32 (the same loss; faster on a CPU, 20%% slower on a GPU); "
        "standard: the model's own loss; auto: chunked on a CPU, standard on a GPU",
        choices=["auto", "chunked", "standard"],
        # chunked and standard are the same loss: a run before auto existed recorded chunked
        on_resume=AUTO_MATCHES_ANY,
    )

    def more_steps(self, examples: int, epochs: float, batch: int) -> list[str]:
        """More text first (--max-train-samples, where the data has it), then more epochs."""
        more = self.enough_steps * batch
        return [
            f"--max-train-samples {more} (more text, where the data has it)",
            *super().more_steps(examples, epochs, batch),
        ]

    @property
    def chunked_lm_loss(self) -> bool:
        if self.compile:  # the chunked loss is a Python loop: not under compile
            return False
        if self.lm_loss == "auto":
            from common.runtime import on_gpu  # the hardware facts (it imports torch, which --help need not wait for)

            return not on_gpu()
        return self.lm_loss == "chunked"
