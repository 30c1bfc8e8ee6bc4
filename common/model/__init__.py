"""Models: loading (embedded, local folder or hub id; safetensors only) and the techniques that change a model."""

from common.model.adapt import adapt
from common.model.layers import matmul_flops_per_token
from common.model.load import (
    generate,
    load_causal_lm,
    load_classifier,
    load_config,
    load_tokenizer,
    model_positions,
    pad_with_end_of_text,
)
from common.model.lora import for_saving

__all__ = [
    "adapt",
    "for_saving",
    "generate",
    "load_causal_lm",
    "load_classifier",
    "load_config",
    "load_tokenizer",
    "matmul_flops_per_token",
    "model_positions",
    "pad_with_end_of_text",
]
