"""The techniques that change the model itself, applied in one place: dropout, freezing, the chunked LM loss, LoRA."""

from __future__ import annotations

from common.config import Techniques
from common.model import layers, lm_loss, lora


def adapt(model, techniques: Techniques, chunked_lm_loss: bool = False):
    """`model` with --dropout, --freeze-embeddings/--freeze-layers, (a causal LM's, when asked) the chunked training
    loss and --lora-r applied, in that order; logs how many parameters train."""
    if techniques.dropout is not None:
        layers.set_dropout(model, techniques.dropout)
    if techniques.freeze_embeddings:
        layers.freeze_embeddings(model)
    layers.freeze_bottom_layers(model, techniques.freeze_layers)
    if chunked_lm_loss:
        lm_loss.use_chunked_loss(model)
    if techniques.lora_r:
        model = lora.add_lora(
            model, techniques.lora_r, techniques.lora_alpha, techniques.lora_dropout, techniques.freeze_layers
        )
    layers.log_parameter_counts(model)
    return model
