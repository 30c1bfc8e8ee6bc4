"""Which layers learn, and how fast: freezing, gradual unfreezing, layer-wise learning rates, dropout.

Everything here finds the transformer blocks by shape (the longest ModuleList), so the same code serves
GPT-2, Llama/SmolLM2 and BERT. A model is seen as three parts, bottom to top:
  embeddings  every parameter registered before the first block (token, position, token-type embeddings)
  blocks      the transformer blocks, bottom (0) to top (n-1)
  head        every parameter after the last block (final norm, classification or LM head)
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from common.errors import UserError

logger = logging.getLogger(__name__)


def transformer_blocks(model) -> torch.nn.ModuleList:
    """The stack of transformer blocks, found by shape rather than name so it works for GPT-2, Llama and BERT."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not lists:
        raise UserError(f"cannot find the transformer blocks of {type(model).__name__} to freeze")
    return max(lists, key=len)


def parameter_depths(model) -> dict[int, int]:
    """id(parameter) -> distance from the top: head 0, top block 1, ..., bottom block n, embeddings n+1."""
    blocks = transformer_blocks(model)
    in_block = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    n, depths, seen_blocks = len(blocks), {}, False
    for param in model.parameters():
        if id(param) in in_block:
            depths[id(param)] = n - in_block[id(param)]
            seen_blocks = True
        else:
            depths[id(param)] = 0 if seen_blocks else n + 1
    return depths


# ---------------------------------------------------------------- freezing


def freeze_embeddings(model) -> None:
    """Freeze the embeddings (everything registered before the first block).

    The token embedding matrix is the largest single tensor of a small model (11.7M of MiniLM's 22.7M
    parameters); freezing it spares its gradient and its optimizer update on every step.
    With tied input/output embeddings (GPT-2, SmolLM2) a causal LM's output head is frozen with it.
    """
    n = len(transformer_blocks(model))
    depths = parameter_depths(model)
    for param in model.parameters():
        if depths[id(param)] == n + 1:
            param.requires_grad_(False)


def freeze_bottom_layers(model, n_layers: int) -> None:
    """Freeze the embeddings and the bottom `n_layers` blocks; the top blocks, final norm and head stay trainable."""
    if n_layers <= 0:
        return
    blocks = transformer_blocks(model)
    if n_layers > len(blocks):
        raise UserError(
            f"--freeze-layers {n_layers} is more than the model's {len(blocks)} blocks; use at most {len(blocks)}"
        )
    freeze_embeddings(model)
    for block in blocks[:n_layers]:
        block.requires_grad_(False)


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters, counting tied weights once."""
    seen, trainable, total = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total


def matmul_flops_per_token(model) -> float:
    """Training FLOPs per token, as matmul work: forward 2 x every weight a matmul uses (all but the embedding
    lookups; a tied LM head counts, as a matmul with the embedding matrix), backward 4 x the trainable ones.
    Attention scores (small at the recipes' lengths) are left out."""
    try:
        lookups = {id(p) for p in model.get_input_embeddings().parameters()}
    except (NotImplementedError, AttributeError):  # a model of its own code that does not say: count them all
        lookups = set()
    positions = [m for n, m in model.named_modules() if n.endswith(("wpe", "position_embeddings"))]
    lookups |= {id(p) for m in positions for p in m.parameters()}
    head = model.get_output_embeddings()
    if head is not None:  # tied to the token embeddings or not, the LM head is a matmul
        lookups.discard(id(head.weight))
    dense = [p for p in model.parameters() if id(p) not in lookups]
    forward = sum(p.numel() for p in dense)
    trainable = sum(p.numel() for p in dense if p.requires_grad)
    return 2.0 * forward + 4.0 * trainable


def log_parameter_counts(model) -> None:
    trainable, total = parameter_counts(model)
    logger.info("parameters: %s trainable of %s (%.1f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)


# ---------------------------------------------------------------- gradual unfreezing (ULMFiT)


class GradualUnfreezing(TrainerCallback):
    """Train the head alone first, then unfreeze one more block from the top every `every` steps (or epoch).

    Only what is trainable when the callback is made takes part: blocks frozen by --freeze-layers stay frozen.
    The embeddings, if trainable, are the last group. The optimizer must already hold every parameter that will
    be unfrozen (common.train.techniques builds it so); AdamW skips a parameter while its gradient is None, so a
    frozen parameter is neither updated nor decayed until its group is unfrozen.
    """

    def __init__(self, model, every: int | str):
        self.every = every
        depths = parameter_depths(model)
        n = len(transformer_blocks(model))
        self.groups = []  # (name, params), unfrozen in this order
        for depth in range(1, n + 2):
            params = [p for p in model.parameters() if depths[id(p)] == depth and p.requires_grad]
            if params:
                self.groups.append((f"block {n - depth}" if depth <= n else "embeddings", params))
        for _, params in self.groups:
            for p in params:
                p.requires_grad_(False)
        self.unfrozen = 0
        self.events = []  # (global step, group name): when each group became trainable

    def _unfreeze_up_to(self, stage: int, step: int) -> None:
        while self.unfrozen < min(stage, len(self.groups)):
            name, params = self.groups[self.unfrozen]
            for p in params:
                p.requires_grad_(True)
            self.unfrozen += 1
            self.events.append((step, name))
            logger.info("gradual unfreezing: step %d, %s now trains", step, name)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.every != "epoch":
            self._unfreeze_up_to(state.global_step // self.every, state.global_step)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.every == "epoch":
            self._unfreeze_up_to(round(state.epoch or 0), state.global_step)


# ---------------------------------------------------------------- learning rates, weight decay, dropout


def parameter_groups(model, lr: float, weight_decay: float, layer_lr_decay: float = 1.0) -> list[dict]:
    """Optimizer groups for every parameter, frozen ones included (they may be unfrozen later).

    Discriminative fine-tuning: a parameter at depth d (head 0, top block 1, ... embeddings n+1) learns at
    lr * layer_lr_decay**d, so the layers nearest the input, which hold the most general features, move least.
    Biases and norm weights (1-D tensors) get no weight decay.
    """
    depths = parameter_depths(model)
    groups: dict[tuple, dict] = {}
    seen = set()
    for param in model.parameters():
        if id(param) in seen:  # tied weights appear once
            continue
        seen.add(id(param))
        depth, decay = depths[id(param)], weight_decay if param.ndim >= 2 else 0.0
        group = groups.setdefault(
            (depth, decay), {"params": [], "lr": lr * layer_lr_decay**depth, "weight_decay": decay, "depth": depth}
        )
        group["params"].append(param)
    return sorted(groups.values(), key=lambda g: (g["depth"], g["weight_decay"]))


def set_dropout(model, p: float) -> None:
    """Set every dropout probability of the model to `p`: nn.Dropout modules, the attention-dropout rates that
    some architectures keep as plain numbers (Llama), and the config, so a saved model reloads the same."""
    if not 0 <= p < 1:
        raise UserError(f"--dropout must be in [0, 1), got {p}")
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        for name, value in vars(module).items():
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, p)
    config = model.config
    for key, value in config.to_dict().items():
        if isinstance(value, float) and ("dropout" in key or key.endswith("pdrop")):
            setattr(config, key, p)
