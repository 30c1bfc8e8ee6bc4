"""A chat model on its held-out conversations: the loss of the reference replies, and the model's own greedy replies
to the same prompts scored against them (chrF, BLEU, ROUGE-L, exact match), with the share of replies that end with
the end-of-turn token (a model that never learned to stop runs to --max-new-tokens). Run before and after training:
the gain is what fine-tuning bought. Returns data; common.tasks.chat renders it."""

from __future__ import annotations

import json
import logging
import math
import re
import string
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.config import CausalLMTraining
from common.data.chat import IGNORE, ids, marked, stop_tokens, trained_share
from common.evaluate.caveats import too_few_steps
from common.evaluate.metrics import add_perplexity
from common.model.chat import Replies, reply

logger = logging.getLogger(__name__)

STOP_TOO_RARE = 0.9  # replies that end with the end-of-turn token: below this share, the model has not learned to stop
SMALL_TEST = 100  # test prompts: fewer, and the scores differ between runs by chance more than by model
BUDGET_AT_MOST = 512  # --max-new-tokens auto never asks for more


@dataclass
class ChatEvaluation:
    metrics: dict  # test_* after training, and the same *_before
    answers: pd.DataFrame  # prompt, references, before, after, stopped_before, stopped_after (every test prompt)
    examples: list[str]  # training conversations with their trained tokens marked, for a person to read
    conversations: dict  # split -> how many conversations it had
    trained_share: dict  # split -> share of its tokens trained
    max_new_tokens: int
    caveats: list[str] = field(default_factory=list)


def prompts_and_references(conversations: list[list]) -> tuple[list[list], list[list[str]]]:
    """Each different prompt (a conversation without its last reply) once, with every reply it has as references:
    a question that several conversations answer differently is scored against all of their answers."""
    grouped: dict[str, tuple[list, list[str]]] = {}
    for conversation in conversations:
        prompt = conversation[:-1]
        grouped.setdefault(json.dumps(prompt, ensure_ascii=False), (prompt, []))[1].append(conversation[-1]["content"])
    return [prompt for prompt, _ in grouped.values()], [references for _, references in grouped.values()]


def reply_budget(tokenizer, conversations: list[list], asked: int | str) -> int:
    """--max-new-tokens: auto -> room for the longest reference reply of the test conversations and a quarter
    more, rounded up to 16 and at most BUDGET_AT_MOST, so that a model that stops where the references do is
    counted as stopping; a number as it is."""
    if isinstance(asked, int):
        return asked
    longest = max(len(row) for row in ids(tokenizer, [c[-1]["content"] for c in conversations]))
    budget = min(BUDGET_AT_MOST, 16 * math.ceil(1.25 * (longest + 1) / 16))
    logger.info("--max-new-tokens auto: %d (the longest test reply has %d tokens)", budget, longest)
    return budget


def response_loss(trainer, dataset, prefix: str = "test") -> dict:
    """The mean loss over the trained tokens (the replies) of `dataset`, weighted by token, its perplexity and
    next-token accuracy; keyed `{prefix}_*`."""
    output = trainer.predict_in_order(dataset, metric_key_prefix=prefix)
    block_losses = np.asarray(output.predictions[1], dtype=np.float64)
    counts = np.array([sum(label != IGNORE for label in row[1:]) for row in dataset["labels"]])
    loss = float((block_losses * counts).sum() / counts.sum())
    metrics = {f"{prefix}_loss": loss, f"{prefix}_next_token_accuracy": output.metrics[f"{prefix}_next_token_accuracy"]}
    return add_perplexity(metrics, prefix)


def _normalized(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: SQuAD's exact-match normalization."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of words over the two lengths; words are runs of lower-cased
    letters and digits, as rouge-score's tokenizer has them."""
    a, b = re.findall(r"[a-z0-9]+", candidate.lower()), re.findall(r"[a-z0-9]+", reference.lower())
    if not a or not b:
        return float(a == b)
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[j - 1]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def reply_scores(replies: Replies, references: list[list[str]], prefix: str = "test") -> dict:
    """Replies against their references (one or more each): chrF and BLEU over the corpus (sacrebleu), the mean of
    the best ROUGE-L F1, exact match with any reference (normalized), the share that stopped, tokens per reply."""
    import sacrebleu

    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(max(map(len, references)))]
    return {
        f"{prefix}_chrf": sacrebleu.corpus_chrf(replies.texts, streams).score,
        f"{prefix}_bleu": sacrebleu.corpus_bleu(replies.texts, streams).score,
        f"{prefix}_rouge_l": float(
            np.mean([max(rouge_l(c, r) for r in refs) for c, refs in zip(replies.texts, references)])
        ),
        f"{prefix}_exact_match": float(
            np.mean([any(_normalized(c) == _normalized(r) for r in refs) for c, refs in zip(replies.texts, references)])
        ),
        f"{prefix}_stopped": float(np.mean(replies.stopped)),
        f"{prefix}_reply_tokens": float(np.mean(replies.new_tokens)),
    }


def evaluate_chat(trainer, tokenizer, dataset, conversations: list[list], max_new_tokens: int, limit: int = 200):
    """(metrics, replies) of the model as it is now on the test conversations (`dataset`: their tokens): the loss of
    their replies, then its own greedy replies to the first `limit` different prompts, stopping at the end of a
    turn."""
    metrics = response_loss(trainer, dataset)
    prompts, references = prompts_and_references(conversations)
    prompts, references = prompts[:limit], references[:limit]
    batch = trainer.args.per_device_eval_batch_size
    replies = reply(trainer.model, tokenizer, prompts, stop_tokens(tokenizer), max_new_tokens, batch)
    metrics.update(reply_scores(replies, references))
    return metrics, replies


def chat_caveats(metrics: dict, prompts: int, steps: int, max_new_tokens: int) -> list[str]:
    """Doubts about the test numbers, each a sentence that says what to do."""
    fixes = "More conversations (--max-train-samples), a smaller --batch-size or more --epochs"
    caveats = too_few_steps(steps, CausalLMTraining.enough_steps, fixes)
    if metrics.get("test_stopped", 1) < STOP_TOO_RARE:
        caveats.append(
            f"Only {metrics['test_stopped']:.0%} of the test replies ended with the end-of-turn token within "
            f"{max_new_tokens} tokens: the model has not learned where to stop (train longer), or the replies are "
            f"longer than --max-new-tokens (raise it)."
        )
    if prompts < SMALL_TEST:
        caveats.append(
            f"The test split has {prompts} different prompts: chrF and exact match move by several points between runs "
            f"by chance alone; compare runs on a larger --test-file."
        )
    return caveats


def compare(before: tuple, after: tuple, splits: dict, encoded: dict, tokenizer, steps: int, max_new_tokens: int):
    """The (metrics, replies) measured before and after training as one ChatEvaluation: test_* after, test_*_before
    before; with the splits' sizes and trained shares, and two training conversations with their trained tokens
    marked (`encoded`: the splits as tokens)."""
    (metrics_before, replies_before), (metrics_after, replies_after) = before, after
    answered = len(replies_after.texts)  # the first prompts, as evaluate_chat took them
    prompts, references = prompts_and_references(splits["test"])
    prompts, references = prompts[:answered], references[:answered]
    metrics = {**metrics_after, **{f"{k}_before": v for k, v in metrics_before.items()}}
    answers = pd.DataFrame(
        {
            "prompt": [prompt[-1]["content"] for prompt in prompts],
            "references": [json.dumps(refs, ensure_ascii=False) for refs in references],
            "before": replies_before.texts,
            "after": replies_after.texts,
            "stopped_before": replies_before.stopped,
            "stopped_after": replies_after.stopped,
        }
    )
    caveats = chat_caveats(metrics, len(prompts), steps, max_new_tokens)
    for caveat in caveats:
        logger.warning(caveat)
    train = encoded["train"]
    examples = [marked(tokenizer, i, labels) for i, labels in zip(train["input_ids"][:2], train["labels"][:2])]
    return ChatEvaluation(
        metrics,
        answers,
        examples,
        {name: len(conversations) for name, conversations in splits.items()},
        {name: trained_share(columns) for name, columns in encoded.items()},
        max_new_tokens,
        caveats,
    )
