"""The causal-LM training loss without the full logits: output layer and cross-entropy a chunk at a time.

A causal LM's loss as transformers computes it materializes the logits of every token over the whole
vocabulary ([8 x 256 tokens, 49,152] = 400 MB in fp32 for the default recipe), copies them to fp32, takes
a log-softmax, and in the backward pass fills, scatters and copies tensors of that size again. On a CPU those
passes over memory took 2.3 s of a 9 s training step (profiled), more than the output-layer matmuls themselves.

Here, 128 tokens at a time, the logits are computed, turned into the loss and straight into their gradient
(softmax minus one-hot, over the token count), which is kept in the compute dtype; the backward pass is then
two matmuls. Only the numbers' rounding order differs from the standard loss (tests/common/test_lm_loss.py).
Used in training only: evaluation still returns logits, which the metrics need.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
CHUNK_TOKENS = 128  # measured: 64-256 all fine; 128 rows x 49k vocabulary (25 MB in fp32) was fastest here
# architectures whose logits are exactly output_layer(last hidden state): no bias, scaling or soft-capping after it
SUPPORTED = {"gpt2", "llama", "mistral", "qwen2", "qwen3"}


class _LinearCrossEntropy(torch.autograd.Function):
    """sum over tokens of cross_entropy(hidden @ weight.T, targets) / divisor, with its gradients found in forward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, divisor, dtype):
        h, w = hidden.to(dtype), weight.to(dtype)
        valid = targets != IGNORE_INDEX
        safe_targets = targets.clamp(min=0)[:, None]
        grad_logits = torch.empty(h.shape[0], w.shape[0], dtype=dtype, device=h.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], CHUNK_TOKENS):
            rows = slice(start, start + CHUNK_TOKENS)
            logits = (h[rows] @ w.T).float()  # rounded to `dtype` by the matmul, as under autocast
            log_normalizer = torch.logsumexp(logits, dim=-1)
            target_logits = logits.gather(1, safe_targets[rows]).squeeze(1)
            total += ((log_normalizer - target_logits) * valid[rows]).sum()
            probabilities = logits.sub_(log_normalizer[:, None]).exp_()  # in place: one chunk-sized buffer
            probabilities.scatter_add_(1, safe_targets[rows], torch.full_like(target_logits[:, None], -1.0))
            grad_logits[rows] = probabilities.mul_((valid[rows] / divisor)[:, None])
        ctx.save_for_backward(grad_logits, h, w)
        ctx.dtypes = hidden.dtype, weight.dtype
        return total / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        grad_logits, h, w = ctx.saved_tensors
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = (grad_logits @ w).to(ctx.dtypes[0]) * grad_loss
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_logits.T @ h).to(ctx.dtypes[1]) * grad_loss
        return grad_hidden, grad_weight, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """The causal-LM loss of transformers' ForCausalLMLoss (position i predicts labels[i + 1], -100 ignored; summed
    and divided by num_items_in_batch when given, else a mean), from hidden states and the output weight."""
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    hidden = hidden.reshape(-1, hidden.shape[-1])
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    else:
        dtype = torch.promote_types(hidden.dtype, weight.dtype)
    divisor = (targets != IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
    divisor = torch.as_tensor(divisor, dtype=torch.float32, device=hidden.device)
    with torch.autocast(device, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, targets.to(hidden.device), divisor, dtype)


def use_chunked_loss(model) -> bool:
    """Make `model` compute its training loss with linear_cross_entropy; False (model unchanged) where the
    architecture is not one known to compute plain logits. Only training calls with labels take the new path."""
    head = model.get_output_embeddings()
    if model.config.model_type not in SUPPORTED or head is None or getattr(head, "bias", None) is not None:
        logger.info(
            "--lm-loss chunked: not known to be exact for %s; using the model's own loss", model.config.model_type
        )
        return False
    standard_forward = model.forward

    @functools.wraps(standard_forward)  # keeps the signature, from which Trainer picks the dataset columns to pass
    def forward(input_ids=None, labels=None, **kwargs):
        if labels is None or not model.training or not torch.is_grad_enabled():
            return standard_forward(input_ids=input_ids, labels=labels, **kwargs)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        hidden = model.base_model(input_ids=input_ids, **{**kwargs, "use_cache": False}).last_hidden_state
        return CausalLMOutputWithPast(loss=linear_cross_entropy(hidden, head.weight, labels, num_items_in_batch))

    model.forward = forward  # an instance attribute, so DDP and peft, which call model.forward, take this path
    return True
