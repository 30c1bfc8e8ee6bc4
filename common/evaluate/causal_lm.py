"""A causal LM's test blocks looked at closely: perplexity, next-token accuracy, the hardest passages and
BLEU/chrF of greedy continuations. Returns data; common.report renders it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from common.config import CausalLMTraining
from common.evaluate.caveats import too_few_steps
from common.evaluate.metrics import add_perplexity

logger = logging.getLogger(__name__)


@dataclass
class CausalLMEvaluation:
    metrics: dict  # flat test_* metrics for metrics.json
    block_losses: list[float]  # each test block's mean token loss, in dataset order
    passages: pd.DataFrame  # the hardest test blocks: block, loss, perplexity, text
    continuations: pd.DataFrame  # prompt, generated, reference
    bleu: float
    chrf: float
    split_blocks: dict  # split -> number of blocks
    block_size: int
    prompt_tokens: int
    new_tokens: int
    caveats: list[str] = field(default_factory=list)  # doubts about the numbers, in words (lm_caveats)


def evaluate_split(trainer, dataset, split: str) -> dict:
    """Metrics on one split, keyed `{split}_*`, with perplexity derived from the loss."""
    return add_perplexity(trainer.evaluate(dataset, metric_key_prefix=split), split)


@torch.no_grad()
def evaluate_causal_lm(
    trainer,
    tokenizer,
    datasets: dict,
    prompts: int = 8,
    prompt_tokens: int = 32,
    new_tokens: int = 32,
    hardest: int = 10,
    before: dict | None = None,
) -> CausalLMEvaluation:
    """One pass over the test blocks: perplexity, next-token accuracy and each block's loss (the hardest
    passages); then BLEU/chrF of greedy continuations of `prompts` test-block openings against the text that
    really follows (sacrebleu). `before`: the test metrics before training, for the caveats (lm_caveats)."""
    import sacrebleu

    tested = trainer.predict_in_order(datasets["test"])  # block losses come from metrics.next_token_predictions
    losses = np.asarray(tested.predictions[1], dtype=np.float64).tolist()
    model, device = trainer.model, trainer.args.device
    model.eval()
    ids = torch.tensor(np.asarray(datasets["test"]["input_ids"]))
    order = np.argsort(losses)[::-1][:hardest]
    passages = pd.DataFrame(
        {
            "block": order,
            "loss": [losses[i] for i in order],
            "perplexity": [float(np.exp(losses[i])) for i in order],
            "text": [tokenizer.decode(ids[i], skip_special_tokens=True) for i in order],
        }
    )

    # a prompt of at most half a block, so that every prompt has a reference to be scored against: with blocks of
    # 32 tokens or fewer, a 32-token prompt left nothing, and BLEU/chrF of empty references read 0.00
    prompt_tokens = min(prompt_tokens, ids.shape[1] // 2)
    new_tokens = min(new_tokens, ids.shape[1] - prompt_tokens)
    chosen = ids[: min(prompts, len(ids))]
    generated, references = [], []
    for row in chosen:
        prompt = row[:prompt_tokens].unsqueeze(0).to(device)
        output = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        generated.append(tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True))
        references.append(tokenizer.decode(row[prompt_tokens : prompt_tokens + new_tokens], skip_special_tokens=True))
    bleu = sacrebleu.corpus_bleu(generated, [references]).score
    chrf = sacrebleu.corpus_chrf(generated, [references]).score
    continuations = pd.DataFrame(
        {
            "prompt": [tokenizer.decode(r[:prompt_tokens], skip_special_tokens=True) for r in chosen],
            "generated": generated,
            "reference": references,
        }
    )
    metrics = {
        **add_perplexity(dict(tested.metrics), "test"),
        "test_continuation_bleu": bleu,
        "test_continuation_chrf": chrf,
    }
    caveats = lm_caveats(metrics, before or {}, trainer.state.log_history, trainer.state.global_step)
    for caveat in caveats:
        logger.warning(caveat)
    return CausalLMEvaluation(
        metrics,
        losses,
        passages,
        continuations,
        bleu,
        chrf,
        {name: len(d) for name, d in datasets.items()},
        ids.shape[1],
        prompt_tokens,
        new_tokens,
        caveats,
    )


RISE = 1.02  # a final validation loss this much above the lowest one is overfitting, not noise


def lm_caveats(metrics: dict, before: dict, history: list[dict], steps: int) -> list[str]:
    """What should make a reader doubt a causal LM's numbers, each a sentence that says what to do."""
    fixes = "More text (--max-train-samples) or more --epochs"
    caveats = too_few_steps(steps, CausalLMTraining.enough_steps, fixes)
    was, now = before.get("test_perplexity"), metrics.get("test_perplexity")
    if was is not None and now is not None and now >= was:
        caveats.append(
            f"Training did not lower the held-out perplexity ({was:.2f} before, {now:.2f} after): a lower --lr, "
            f"or text closer to what the model should write."
        )
    losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if len(losses) >= 2:
        best_step, best = min(losses, key=lambda point: point[1])
        if losses[-1][1] > RISE * best:
            caveats.append(
                f"The validation loss rose from {best:.4f} (step {best_step}) to {losses[-1][1]:.4f} at the end: "
                f"the model began to memorize its training text. Fewer --epochs, or more text "
                f"(--max-train-samples)."
            )
    return caveats
