"""Turning cleaned tables into token datasets that Trainer can batch.

Classification examples are tokenized once, without padding: the collator pads each batch to its own
longest example (dynamic padding), so short snippets do not pay for the longest one in the set.
Causal-LM corpora are joined with an end-of-text token between documents and cut into equal blocks (Blocks),
which remember where each document began.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
import zipfile

import datasets
import numpy as np
import pandas as pd
import torch
from transformers import DataCollatorWithPadding

from common import assets
from common.data.long_text import cut_long_texts, long_text_dataset
from common.errors import UserError, first_line

logger = logging.getLogger(__name__)


def classification_dataset(
    frame: pd.DataFrame, tokenizer, text_columns: list[str], max_length: int
) -> datasets.Dataset:
    """input_ids/attention_mask/labels for each row; two text columns are encoded as a sentence pair."""
    texts = [cut_long_texts(frame[c].tolist(), max_length) for c in text_columns]
    encoded = cached(
        "classification",
        tokenizer,
        texts,
        {"max_length": max_length},
        lambda: tokenizer(*texts, truncation=True, max_length=max_length),
    )
    columns = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    if "token_type_ids" in encoded:
        columns["token_type_ids"] = encoded["token_type_ids"]
    if "labels" in frame:
        columns["labels"] = frame["labels"].tolist()
    lengths = np.array([len(ids) for ids in columns["input_ids"]])
    truncated = int((lengths >= max_length).sum())
    if truncated:
        logger.info("%d of %d examples were truncated to %d tokens", truncated, len(lengths), max_length)
    return datasets.Dataset.from_dict(columns)


def classification_datasets(
    splits: dict, tokenizer, text_columns: list[str], max_length: int, long_text: str = "truncate", stride: int = 32
) -> dict:
    """A dataset per split; texts beyond max_length are truncated, or handled by --long-text (common.data.long_text)."""
    if long_text == "truncate":
        return {
            name: classification_dataset(frame, tokenizer, text_columns, max_length) for name, frame in splits.items()
        }
    return {
        name: long_text_dataset(frame, tokenizer, text_columns, max_length, long_text, stride)
        for name, frame in splits.items()
    }


def padding_collator(tokenizer, pad_to_multiple_of: int | None | str = "auto"):
    """Pads each batch to its longest member.

    "auto" rounds lengths up to a multiple of 8 on CUDA, where tensor cores want aligned shapes, and not at
    all on CPU: there the rounding only adds padding (12% -> 2% of the tokens on the sentiment recipe,
    +4.5% useful tokens/s; see benchmarks/).
    """
    if pad_to_multiple_of == "auto":
        pad_to_multiple_of = 8 if torch.cuda.is_available() else None
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)


def positions(model_config) -> int | None:
    """How many tokens the model reads (BERT: max_position_embeddings, GPT-2: n_positions)."""
    return getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", None)


def check_max_length(max_length: int, model_config, flag: str = "--max-length") -> None:
    limit = positions(model_config)
    if limit and max_length > limit:
        raise UserError(
            f"{flag} {max_length} is beyond what the model can see ({limit} positions); use at most {limit}"
        )


# ---------------------------------------------------------------- causal LM


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Equal blocks of a corpus's token stream: `ids` [n, block_size], and `starts` (the same shape) True where a
    document of the data begins. Where documents begin is known from the data, never from a token: the end-of-text
    token may also occur inside a document (SmolLM2-Instruct's `<|im_end|>` ends every turn of a rendered chat).
    Indexing takes rows of both, as a numpy array's rows."""

    ids: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, rows) -> Blocks:
        return Blocks(self.ids[rows], self.starts[rows])


def corpus_tokens(documents: list[str], tokenizer, what: str = "the corpus") -> tuple[np.ndarray, np.ndarray]:
    """All documents as one token stream, each followed by the end-of-text token so the model learns boundaries;
    and where each document starts in it (a bool per token)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError("the tokenizer has no end-of-text token; causal-LM blocks need one to separate documents")

    def tokenize():
        stream, lengths = [], []
        for ids in tokenizer(documents, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
            lengths.append(len(ids) + 1)
        return {"tokens": [stream], "lengths": [lengths]}

    encoded = cached("corpus-documents", tokenizer, [documents], {}, tokenize)
    ids = np.asarray(encoded["tokens"][0], dtype=np.int64)
    lengths = np.asarray(encoded["lengths"][0], dtype=np.int64)
    starts = np.zeros(len(ids), dtype=bool)
    starts[np.cumsum(lengths) - lengths] = True
    inside = int((ids == eos).sum()) - len(lengths)
    if inside:
        logger.warning(
            "the end-of-text token %r occurs %d times inside the documents of %s (rendered chat turns?): documents "
            "are still kept apart where the data separates them, but the model learns to end text there, so "
            "generation will stop at it; for conversations use recipes/chat_sft.py",
            tokenizer.eos_token,
            inside,
            what,
        )
    return ids, starts


def blocks_from_tokens(
    tokens: np.ndarray, block_size: int, what: str = "the corpus", starts: np.ndarray | None = None
) -> Blocks:
    """Cut the stream into blocks of block_size; the tail shorter than a block is dropped. `starts`: where its
    documents begin (corpus_tokens); none given, the stream is one document."""
    n_blocks = len(tokens) // block_size
    if n_blocks == 0:
        raise UserError(
            f"{what} has {len(tokens)} tokens, fewer than one block of {block_size}; lower --block-size or add text"
        )
    if starts is None:
        starts = np.arange(len(tokens)) == 0
    shape = (n_blocks, block_size)
    return Blocks(tokens[: n_blocks * block_size].reshape(shape), starts[: n_blocks * block_size].reshape(shape))


def document_position_ids(starts: np.ndarray) -> np.ndarray:
    """Positions that restart at every block and at every document start: starts [T F F T F] -> [0 1 2 0 1].

    Given restarting position_ids and no attention mask, transformers builds a block-diagonal causal mask
    (SDPA or flash attention), so documents packed into one block cannot attend to each other.
    """
    index = np.broadcast_to(np.arange(starts.shape[1]), starts.shape)
    return index - np.maximum.accumulate(np.where(starts, index, 0), axis=1)


def lm_dataset(blocks: np.ndarray, position_ids: np.ndarray | None = None) -> datasets.Dataset:
    # labels equal input_ids: the model shifts them by one internally to score next-token predictions
    columns = {"input_ids": blocks.tolist(), "labels": blocks.tolist()}
    if position_ids is not None:
        columns["position_ids"] = position_ids.tolist()
    return datasets.Dataset.from_dict(columns)


def lm_datasets(blocks: dict, limits: dict, seed: int, packing: str) -> dict:
    """Capped blocks per split as datasets; with packing="documents", documents in a block are kept apart."""
    out = {}
    for name, split_blocks in blocks.items():
        kept = take_blocks(split_blocks, limits.get(name), seed)
        positions = document_position_ids(kept.starts) if packing == "documents" else None
        out[name] = lm_dataset(kept.ids, positions)
    return out


def split_blocks(blocks: np.ndarray, seed: int, names=("validation", "test"), fraction: float = 0.1) -> dict:
    """Carve `fraction` of the blocks (seeded) for each held-out split in `names`; the rest is train (80/10/10)."""
    n_out = max(1, round(len(blocks) * fraction))
    if len(blocks) < n_out * len(names) + 1:
        raise UserError(
            f"the corpus makes only {len(blocks)} blocks: too few to split off {'/'.join(names)}; "
            f"lower --block-size or add text"
        )
    order = np.random.default_rng(seed).permutation(len(blocks))
    carved = {name: blocks[order[i * n_out : (i + 1) * n_out]] for i, name in enumerate(names)}
    return {"train": blocks[np.sort(order[len(names) * n_out :])], **carved}


def corpus_blocks(documents: dict, tokenizer, block_size: int, seed: int) -> dict:
    """Blocks for each split given; validation/test splits not given are carved from the training blocks."""
    blocks = {}
    for name, docs in documents.items():
        what = f"the {name} corpus"
        ids, starts = corpus_tokens(docs, tokenizer, what)
        blocks[name] = blocks_from_tokens(ids, block_size, what, starts)
        logger.info(
            "%s: %s documents, %s tokens -> %s blocks of %d (the last %d tokens, less than a block, are left out)",
            what, f"{len(docs):,}", f"{len(ids):,}", f"{len(blocks[name]):,}", block_size, len(ids) % block_size,
        )  # fmt: skip
    missing = tuple(name for name in ("validation", "test") if name not in blocks)
    if missing:
        blocks.update(split_blocks(blocks["train"], seed, missing))
        logger.info("blocks of %d tokens per split: %s", block_size, {name: len(b) for name, b in blocks.items()})
    return blocks


def take_blocks(blocks: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or limit >= len(blocks):
        return blocks
    logger.info(
        "using a seeded sample of %d of %d blocks (raise the --max-*-samples flag for more)", limit, len(blocks)
    )
    return blocks[np.sort(np.random.default_rng(seed).choice(len(blocks), size=limit, replace=False))]


# ---------------------------------------------------------------- on-disk cache

MANY_TEXTS = 50_000  # from this many texts on, tokenizing is announced before it starts and timed after


def cached(kind: str, tokenizer, texts: list[list[str]], settings: dict, tokenize) -> dict:
    """`tokenize()`'s {name: list of id lists}, stored once per (tokenizer, texts, settings) in the cache folder.

    The key hashes the tokenizer's full definition (vocabulary, merges, normalizer), not just its name, so an
    edited tokenizer never reuses stale ids. Set LM_RECIPES_TOKEN_CACHE=0 to turn the cache off.
    """
    if os.environ.get("LM_RECIPES_TOKEN_CACHE", "1") == "0":
        return dict(tokenize())
    key = hashlib.sha256(json.dumps([kind, type(tokenizer).__name__, len(tokenizer), settings]).encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # minus the truncation/padding state, which the last call to the tokenizer leaves behind
        definition = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        key.update(json.dumps(definition, sort_keys=True).encode())
    else:
        key.update(str(sorted(tokenizer.get_vocab().items())).encode())
    for column in texts:
        for text in column:
            key.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = assets.cache_dir() / "tokens" / f"{kind}-{key.hexdigest()[:32]}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                names = [name[: -len(".flat")] for name in stored.files if name.endswith(".flat")]
                return {name: _unflatten(stored[name + ".flat"], stored[name + ".ends"]) for name in names}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # cut short or damaged: tokenize again
            logger.warning("the token cache file %s cannot be read (%s); tokenizing again", path, first_line(e))
    texts_count = sum(len(column) for column in texts)
    if texts_count >= MANY_TEXTS:  # a wait of seconds to minutes: say what it is before it starts
        logger.info("tokenizing %s texts (once: the ids are cached for later runs) ...", f"{texts_count:,}")
    started = time.perf_counter()
    encoded = dict(tokenize())
    seconds = time.perf_counter() - started
    if texts_count >= MANY_TEXTS or seconds > 2:
        logger.info("tokenized %s texts in %.1f s", f"{texts_count:,}", seconds)
    arrays = {}
    for name, rows in encoded.items():
        arrays[name + ".flat"] = np.fromiter((i for row in rows for i in row), dtype=np.int64)
        arrays[name + ".ends"] = np.cumsum([len(row) for row in rows], dtype=np.int64)
    partial = path.with_suffix(f".{os.getpid()}.partial.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, **arrays)
        os.replace(partial, path)  # a reader never sees a half-written file
    except OSError as e:  # a full or read-only disk: the run goes on without the cache
        logger.warning(
            "could not write the token cache in %s (%s); going on without it (set LM_RECIPES_CACHE to a folder "
            "you can write to, or LM_RECIPES_TOKEN_CACHE=0)",
            assets.cache_dir(),
            e.strerror or first_line(e),
        )
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return encoded


def _unflatten(flat: np.ndarray, ends: np.ndarray) -> list[list[int]]:
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    return [flat[start:end].tolist() for start, end in zip(starts, ends)]
