"""A causal LM made ready to chat: generation that stops at the end of a turn (saved in generation_config.json, so
that transformers.pipeline and `generate` stop there too), and its replies to conversations, batched."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from common.config import Techniques
from common.data.chat import render, stop_tokens
from common.errors import UserError

logger = logging.getLogger(__name__)


def ready_to_chat(model, tokenizer, added_tokens: list[str], techniques: Techniques):
    """`model` stopping where the tokenizer's chat template ends a turn; refused in one line when the template added
    `added_tokens` (load_causal_lm grew the embeddings for them) and a technique would keep their embeddings from
    training."""
    if added_tokens:
        frozen = [
            flag
            for flag, on in (
                ("--lora-r", techniques.lora_r),
                ("--freeze-layers", techniques.freeze_layers),
                ("--freeze-embeddings", techniques.freeze_embeddings),
            )
            if on
        ]
        if frozen:
            raise UserError(
                f"the chat template added {', '.join(added_tokens)} to the tokenizer, whose new embeddings must train, "
                f"which {' and '.join(frozen)} prevent(s); drop {frozen[0]}, or use a model whose tokenizer has a chat "
                f"template"
            )
    stops = stop_tokens(tokenizer)
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    logger.info("generation stops at %s", ", ".join(repr(tokenizer.decode([t])) for t in stops))
    return model


@dataclass
class Replies:
    texts: list[str]
    stopped: list[bool]  # ended with a stop token (the end of the turn) within max_new_tokens
    prompt_tokens: list[int]
    new_tokens: list[int]  # generated, the stop token included


# a temperature below this samples from a distribution that is greedy in all but rounding (and 1e-300 overflows
# the logits to inf): it is taken as greedy
GREEDY_BELOW = 1e-4


@torch.no_grad()
def reply(
    model,
    tokenizer,
    conversations: list[list],
    stops: int | list[int],
    max_new_tokens: int,
    batch_size: int = 16,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 42,
) -> Replies:
    """The model's next reply to each conversation (ending on the user), in batches of similar length (left
    padding): greedy, or with temperature > 0 seeded nucleus sampling. Stops at any of `stops`."""
    from transformers import set_seed

    set_seed(seed)
    stops = [stops] if isinstance(stops, int) else list(stops)
    prompts = [render(tokenizer, conversation, add_generation_prompt=True) for conversation in conversations]
    sampling = dict(do_sample=False)
    if temperature >= GREEDY_BELOW:
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p)
    if len(prompts) > batch_size:  # minutes on a CPU: say what it is before it starts
        logger.info("replying to %d conversations, up to %d new tokens each", len(prompts), max_new_tokens)
    result = Replies([""] * len(prompts), [False] * len(prompts), [0] * len(prompts), [0] * len(prompts))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            inputs = tokenizer(
                [prompts[i] for i in chosen], add_special_tokens=False, padding=True, return_tensors="pt"
            )
            inputs = inputs.to(model.device)
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
            for row_number, (i, row) in enumerate(zip(chosen, output[:, inputs["input_ids"].shape[1] :].tolist())):
                end = next((n for n, token in enumerate(row) if token in stops), None)
                result.stopped[i] = end is not None
                kept = row[:end] if end is not None else row
                result.new_tokens[i] = len(kept) + (1 if end is not None else 0)
                result.prompt_tokens[i] = int(inputs["attention_mask"][row_number].sum())
                result.texts[i] = tokenizer.decode(kept, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return result
