"""A causal LM's test blocks looked at closely: perplexity, next-token accuracy, the hardest passages and
BLEU/chrF of greedy continuations. Returns data; common.report renders it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from common.evaluate.metrics import add_perplexity


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
) -> CausalLMEvaluation:
    """One pass over the test blocks: perplexity, next-token accuracy and each block's loss (the hardest
    passages); then BLEU/chrF of greedy continuations of `prompts` test-block openings against the text that
    really follows (sacrebleu)."""
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
    )
