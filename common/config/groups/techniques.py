"""techniques: what changes the model or the loss (freezing, LoRA, dropout, losses, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from common.config.fields import (
    class_weights,
    fraction,
    non_negative,
    option,
    positive,
    probability,
    require,
    steps_or_epoch,
)
from common.config.groups.base import Group


@dataclass(frozen=True)
class Techniques(Group):
    """techniques (see docs/techniques.md)"""

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
    label_smoothing: float = option(
        0.0,
        "label smoothing factor for the loss (e.g. 0.1)",
        check=probability,
        trainer_fields=("label_smoothing_factor",),
    )

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
