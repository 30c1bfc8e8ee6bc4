"""Classification losses, chosen by name (--loss): the registry LOSSES maps a name to a factory.

A factory takes the run's technique settings and the class weights (a tensor, or None) and returns Trainer's
`compute_loss_func(outputs, labels, num_items_in_batch)`, or None for the model's own loss (Trainer then
applies --label-smoothing itself). Adding a loss: a factory here, its name in LOSSES, its settings (if any) as
fields of common.config.ClassificationTechniques, and a test; no recipe changes.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from common.config import ClassificationTechniques
from common.errors import UserError

logger = logging.getLogger(__name__)


class WeightedCrossEntropy:
    """Class-weighted cross-entropy: each example's loss times its class's weight, divided by the weights' sum."""

    def __init__(self, weights: torch.Tensor, label_smoothing: float = 0.0):
        self.weights, self.label_smoothing = weights, label_smoothing

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        return F.cross_entropy(
            logits, labels, weight=self.weights.to(logits.device), label_smoothing=self.label_smoothing
        )


class FocalLoss:
    """Focal loss (Lin et al., 2017): cross-entropy times (1 - p_true) ** gamma, so examples the model already
    gets right weigh little and the hard ones dominate. gamma 0 is plain cross-entropy. With class weights, each
    example also weighs its class's weight and the sum is divided by the weights' sum, as in WeightedCrossEntropy."""

    def __init__(self, gamma: float, weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
        self.gamma, self.weights, self.label_smoothing = gamma, weights, label_smoothing

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        cross_entropy = F.cross_entropy(logits, labels, reduction="none", label_smoothing=self.label_smoothing)
        p_true = logits.softmax(-1).gather(1, labels[:, None]).squeeze(1)
        losses = (1 - p_true).pow(self.gamma) * cross_entropy
        if self.weights is None:
            return losses.mean()
        weight = self.weights.to(logits.device)[labels]
        return (losses * weight).sum() / weight.sum()


def cross_entropy(techniques: ClassificationTechniques, weights: torch.Tensor | None):
    if weights is None:
        return None  # the model's own loss; Trainer adds --label-smoothing
    return WeightedCrossEntropy(weights, techniques.label_smoothing)


def focal(techniques: ClassificationTechniques, weights: torch.Tensor | None):
    return FocalLoss(techniques.focal_gamma, weights, techniques.label_smoothing)


LOSSES = {"cross-entropy": cross_entropy, "focal": focal}


def class_weights(spec: str | None, train_labels, label_names: list[str]) -> torch.Tensor | None:
    """--class-weights auto (n / (classes * count): rare classes weigh more) or one weight per class, in label order."""
    if not spec:
        return None
    counts = np.bincount(np.asarray(train_labels), minlength=len(label_names))
    if spec == "auto":
        if (counts == 0).any():
            raise UserError("--class-weights auto: a class has no training examples; give the weights explicitly")
        weights = counts.sum() / (len(label_names) * counts)
    else:
        try:
            weights = np.array([float(w) for w in spec.split(",")])
        except ValueError:
            raise UserError(f"--class-weights takes 'auto' or numbers separated by commas, got {spec!r}") from None
        if len(weights) != len(label_names) or not (np.isfinite(weights) & (weights > 0)).all():
            raise UserError(
                f"--class-weights needs {len(label_names)} positive numbers, one per class in the order "
                f"{', '.join(label_names)}; got {spec!r}"
            )
    logger.info("class weights: %s", ", ".join(f"{n}={w:.3g}" for n, w in zip(label_names, weights)))
    return torch.tensor(weights, dtype=torch.float32)


def build(techniques: ClassificationTechniques, train_labels, label_names: list[str]):
    """The compute_loss_func for --loss (with --class-weights, --label-smoothing), or None: the model's own loss."""
    if techniques.loss not in LOSSES:
        raise UserError(f"--loss {techniques.loss} is not a known loss; choose one of {', '.join(LOSSES)}")
    return LOSSES[techniques.loss](techniques, class_weights(techniques.class_weights, train_labels, label_names))
