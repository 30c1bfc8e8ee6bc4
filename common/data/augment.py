"""Label-preserving text augmentation for small classification sets (EDA-style edits, no word lists needed).

Each variant of a training example gets one random edit, chosen with a seeded generator:
  delete  drop each word with probability 0.1 (at least one word stays)
  swap    exchange two random words, once or twice
Only the training split is ever augmented; validation and test rows are never touched.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def delete_words(words: list[str], rng: np.random.Generator, p: float = 0.1) -> list[str]:
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[rng.integers(len(words))]]


def swap_words(words: list[str], rng: np.random.Generator) -> list[str]:
    words = list(words)
    for _ in range(rng.integers(1, 3)):
        i, j = rng.integers(len(words), size=2)
        words[i], words[j] = words[j], words[i]
    return words


def variant(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    if len(words) < 2:
        return text
    edit = delete_words if rng.random() < 0.5 else swap_words
    return " ".join(edit(words, rng))


def augment(train: pd.DataFrame, text_columns: list[str], n: int, seed: int) -> pd.DataFrame:
    """The training rows followed by `n` edited copies of each (every text column edited, the label kept)."""
    if n <= 0:
        return train
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(n):
        copy = train.copy()
        for column in text_columns:
            copy[column] = [variant(text, rng) for text in copy[column]]
        copies.append(copy)
    augmented = pd.concat([train, *copies], ignore_index=True)
    logger.info("augmentation: %d training examples -> %d (+%d edited copies of each)", len(train), len(augmented), n)
    return augmented
