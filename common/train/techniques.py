"""The techniques that hook into training, built in one place from the run configuration:

  loss               --loss, --class-weights, --label-smoothing (classification; common.train.losses)
  callbacks          --gradual-unfreeze (a block more every N steps or epoch)
  parameter groups   --layer-lr-decay (lr * decay**depth), and one group per depth for --gradual-unfreeze

`technique_hooks(...)` returns them as keyword arguments of RecipeTrainer. The techniques that change the model
itself (dropout, freezing, LoRA) are applied by common.model.adapt.
"""

from __future__ import annotations

from common.config import Techniques
from common.model import layers
from common.train import losses


def technique_hooks(techniques: Techniques, model, train_labels=None, label_names: list[str] | None = None) -> dict:
    """{"callbacks", "compute_loss_func", "parameter_groups"} for RecipeTrainer; a classifier passes its
    `train_labels` and `label_names`, from which its --loss and --class-weights are built."""
    callbacks = []
    if techniques.gradual_unfreeze:
        callbacks.append(layers.GradualUnfreezing(model, techniques.gradual_unfreeze))
    loss = None
    if label_names is not None:
        loss = losses.build(techniques, train_labels, label_names)
    groups = None
    if techniques.layer_lr_decay or techniques.gradual_unfreeze:
        decay = techniques.layer_lr_decay or 1.0

        def groups(model, lr: float, weight_decay: float) -> list[dict]:
            # every parameter gets a group, frozen ones too, so those unfrozen later are updated from then on
            return layers.parameter_groups(model, lr, weight_decay, decay)

    return {"callbacks": callbacks, "compute_loss_func": loss, "parameter_groups": groups}
