"""Texts longer than --max-length, for classification: --long-text truncate | head-tail | sliding-window.

  truncate        keep the first max_length tokens (the default; fine when the opening says enough)
  head-tail       keep the first quarter and the last three quarters of the budget: reviews and reports
                  often state their verdict at the end (Sun et al., 2019, found head+tail best on IMDb)
  sliding-window  cut each document into windows of max_length tokens that overlap by --stride tokens, so
                  every token is seen; each window is trained with its document's label, and at evaluation
                  the document's prediction is the mean of its windows' logits (metrics per document)

Window datasets carry a `document` column (the row each window came from); common.train.RecipeTrainer sees
it and evaluates per document.
"""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pandas as pd

from common.errors import UserError

logger = logging.getLogger(__name__)


# Tokenizing a 50 MB cell whole takes minutes and gigabytes, only for all but --max-length tokens to be cut off.
# No token of real text spans more than a few dozen characters, so cells are first cut to this many characters per
# token of --max-length: the tokens kept are the same.
CHARS_PER_TOKEN = 64


def cut_long_texts(texts: list[str], max_length: int, keep_tail: bool = False) -> list[str]:
    """Each text cut to max_length * CHARS_PER_TOKEN characters (with `keep_tail`, that many from each end)."""
    limit = max_length * CHARS_PER_TOKEN
    cut = [
        t if len(t) <= (2 if keep_tail else 1) * limit else (t[:limit] + t[-limit:] if keep_tail else t[:limit])
        for t in texts
    ]
    longest = max(map(len, texts), default=0)
    if longest > limit:
        logger.info(
            "texts up to %d characters long: cut to %d before tokenizing (--max-length %d)", longest, limit, max_length
        )
    return cut


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text ([CLS] / [SEP] for BERT, none for GPT-2)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    start = next(i for i in range(len(full) - len(plain) + 1) if full[i : i + len(plain)] == plain)
    return full[:start], full[start + len(plain) :]


def head_tail_dataset(frame: pd.DataFrame, tokenizer, text_column: str, max_length: int) -> datasets.Dataset:
    before, after = special_tokens_around(tokenizer)
    budget = max_length - len(before) - len(after)
    head = budget // 4
    rows, long = [], 0
    texts = cut_long_texts(frame[text_column].tolist(), max_length, keep_tail=True)
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        long += len(ids) > budget
        kept = ids if len(ids) <= budget else ids[:head] + ids[len(ids) - (budget - head) :]
        rows.append(before + kept + after)
    logger.info("head-tail: %d of %d examples were longer than %d tokens", long, len(rows), max_length)
    columns = {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}
    if "labels" in frame:
        columns["labels"] = frame["labels"].tolist()
    return datasets.Dataset.from_dict(columns)


def window_dataset(frame: pd.DataFrame, tokenizer, text_column: str, max_length: int, stride: int) -> datasets.Dataset:
    if stride >= max_length - sum(map(len, special_tokens_around(tokenizer))):
        raise UserError(f"--stride {stride} must be smaller than --max-length {max_length} minus the special tokens")
    # Cut here rather than by the tokenizer's return_overflowing_tokens, whose windows changed between
    # tokenizers releases (0.23.2 made 2 windows of a text that needs 20 or more), and which slow tokenizers lack.
    before, after = special_tokens_around(tokenizer)
    budget = max_length - len(before) - len(after)
    windows, document = [], []
    encoded = tokenizer(frame[text_column].tolist(), add_special_tokens=False, verbose=False)["input_ids"]
    for row, ids in enumerate(encoded):
        start = 0
        while True:
            windows.append(before + ids[start : start + budget] + after)
            document.append(row)
            if start + budget >= len(ids):
                break
            start += budget - stride  # the next window repeats the last `stride` tokens of this one
    columns = {"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows], "document": document}
    if "labels" in frame:
        labels = frame["labels"].to_numpy()
        columns["labels"] = labels[document].tolist()
    logger.info(
        "sliding windows: %d documents -> %d windows of at most %d tokens (overlap %d)",
        len(frame),
        len(document),
        max_length,
        stride,
    )
    return datasets.Dataset.from_dict(columns)


def long_text_dataset(frame, tokenizer, text_columns: list[str], max_length: int, mode: str, stride: int):
    if len(text_columns) != 1:
        raise UserError(
            f"--long-text {mode} works on one text column; sentence pairs are truncated (--long-text truncate)"
        )
    if mode == "head-tail":
        return head_tail_dataset(frame, tokenizer, text_columns[0], max_length)
    return window_dataset(frame, tokenizer, text_columns[0], max_length, stride)


def mean_by_document(logits: np.ndarray, document: np.ndarray) -> np.ndarray:
    """Mean of the windows' logits for each document: [windows, classes] -> [documents, classes]."""
    n_documents = int(document.max()) + 1
    sums = np.zeros((n_documents, logits.shape[1]), dtype=np.float64)
    np.add.at(sums, document, logits)
    return sums / np.bincount(document, minlength=n_documents)[:, None]


def first_by_document(values: np.ndarray, document: np.ndarray) -> np.ndarray:
    """One value per document (its first window's), e.g. the label that every window shares."""
    _, first = np.unique(document, return_index=True)
    return values[first]
