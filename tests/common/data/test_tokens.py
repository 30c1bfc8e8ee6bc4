import re

import numpy as np
import pandas as pd
import pytest
import torch

from common.data import tokens as tokenization
from common.errors import UserError


def test_classification_dataset_has_no_padding_and_truncates(gpt2_tokenizer):
    frame = pd.DataFrame({"text": ["short", "a much longer sentence than the first one, truly"], "labels": [0, 1]})
    ds = tokenization.classification_dataset(frame, gpt2_tokenizer, ["text"], max_length=6)
    lengths = [len(ids) for ids in ds["input_ids"]]
    assert lengths == [1, 6]  # "short" is one GPT-2 token; the other is cut at 6
    assert ds["labels"] == [0, 1]


def test_sentence_pairs_are_encoded_together(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = pd.DataFrame({"a": ["the cat sat"], "b": ["a cat was sitting"], "labels": [1]})
    ds = tokenization.classification_dataset(frame, tokenizer, ["a", "b"], max_length=32)
    ids = ds["input_ids"][0]
    assert ids.count(tokenizer.sep_token_id) == 2  # [CLS] a [SEP] b [SEP]
    assert set(ds["token_type_ids"][0]) == {0, 1}


def test_padding_collator_pads_to_batch_longest(gpt2_tokenizer):
    gpt2_tokenizer.pad_token = gpt2_tokenizer.eos_token
    batch = [{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1]}, {"input_ids": [4] * 10, "attention_mask": [1] * 10}]
    assert tokenization.padding_collator(gpt2_tokenizer, pad_to_multiple_of=8)(batch)["input_ids"].shape == (2, 16)
    padded = tokenization.padding_collator(gpt2_tokenizer, pad_to_multiple_of=None)(batch)
    assert padded["input_ids"].shape == (2, 10)
    assert padded["attention_mask"][0].sum() == 3
    auto = tokenization.padding_collator(gpt2_tokenizer)(batch)["input_ids"].shape[1]
    assert auto == (16 if torch.cuda.is_available() else 10)  # rounding to 8 only where tensor cores want it


def test_corpus_tokens_put_end_of_text_between_documents(gpt2_tokenizer):
    stream, starts = tokenization.corpus_tokens(["Hello world", "Hello"], gpt2_tokenizer)
    assert stream.tolist() == [15496, 995, 50256, 15496, 50256]
    assert starts.tolist() == [True, False, False, True, False]


def test_blocks_drop_the_short_tail_and_refuse_tiny_corpora():
    blocks = tokenization.blocks_from_tokens(np.arange(10), 4)
    assert blocks.ids.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert blocks.starts.tolist() == [[True, False, False, False], [False] * 4]  # no starts given: one document
    with pytest.raises(UserError, match="fewer than one block of 64"):
        tokenization.blocks_from_tokens(np.arange(10), 64)


def test_split_blocks_is_disjoint_complete_and_seeded():
    blocks = np.arange(200).reshape(100, 2)
    out = tokenization.split_blocks(blocks, seed=1)
    assert {k: len(v) for k, v in out.items()} == {"train": 80, "validation": 10, "test": 10}
    rows = np.concatenate(list(out.values()))[:, 0]
    assert sorted(rows.tolist()) == list(range(0, 200, 2))
    assert (tokenization.split_blocks(blocks, seed=1)["test"] == out["test"]).all()


def test_corpus_blocks_carve_only_missing_splits(gpt2_tokenizer):
    docs = {"train": ["word " * 400], "validation": ["word " * 50]}
    blocks = tokenization.corpus_blocks(docs, gpt2_tokenizer, block_size=8, seed=0)
    assert len(blocks["validation"]) == 6  # 51 tokens -> 6 blocks of 8, from the given file
    assert len(blocks["test"]) == 5 and len(blocks["train"]) == 45  # 50 blocks: 10% carved for test


def test_check_max_length_against_model_positions():
    class Config:
        max_position_embeddings = 128

    tokenization.check_max_length(128, Config())
    with pytest.raises(UserError, match="beyond what the model can see \\(128 positions\\)"):
        tokenization.check_max_length(129, Config())


def test_token_cache_reuses_ids_and_keys_on_texts_and_settings(tmp_path, monkeypatch, gpt2_tokenizer):
    monkeypatch.setenv("LM_RECIPES_CACHE", str(tmp_path))
    calls = []

    def tokenize(texts, max_length):
        calls.append(max_length)
        return gpt2_tokenizer(texts, truncation=True, max_length=max_length)

    texts = ["a fine film", "dull", "x " * 40]
    first = tokenization.cached("classification", gpt2_tokenizer, [texts], {"m": 8}, lambda: tokenize(texts, 8))
    again = tokenization.cached("classification", gpt2_tokenizer, [texts], {"m": 8}, lambda: tokenize(texts, 8))
    assert calls == [8]  # the second call read the cache
    assert (
        again["input_ids"] == first["input_ids"] and again["input_ids"][2] == gpt2_tokenizer(texts[2])["input_ids"][:8]
    )
    tokenization.cached("classification", gpt2_tokenizer, [texts], {"m": 4}, lambda: tokenize(texts, 4))
    tokenization.cached("classification", gpt2_tokenizer, [texts[:2]], {"m": 8}, lambda: tokenize(texts[:2], 8))
    assert calls == [8, 4, 8]  # other settings or other texts: tokenized afresh
    assert len(list((tmp_path / "tokens").glob("classification-*.npz"))) == 3
    assert not list((tmp_path / "tokens").glob("*partial*"))


def test_a_cache_that_cannot_be_written_or_read_is_passed_over_with_a_warning(
    tmp_path, monkeypatch, gpt2_tokenizer, caplog
):
    import errno

    texts = ["a fine film", "dull"]
    expected = gpt2_tokenizer(texts)["input_ids"]
    monkeypatch.setenv("LM_RECIPES_CACHE", str(tmp_path))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(tokenization.np, "savez", full_disk)  # a full (or read-only) home folder
        encoded = tokenization.cached("classification", gpt2_tokenizer, [texts], {}, lambda: gpt2_tokenizer(texts))
    assert encoded["input_ids"] == expected and "going on without it" in caplog.text
    assert not list((tmp_path / "tokens").glob("*"))
    tokenization.cached("classification", gpt2_tokenizer, [texts], {}, lambda: gpt2_tokenizer(texts))
    [stored] = (tmp_path / "tokens").glob("*.npz")
    stored.write_bytes(stored.read_bytes()[:40])  # cut short
    again = tokenization.cached("classification", gpt2_tokenizer, [texts], {}, lambda: gpt2_tokenizer(texts))
    assert again["input_ids"] == expected and "cannot be read" in caplog.text


def test_corpus_tokens_from_cache_equal_fresh_ones(tmp_path, monkeypatch, gpt2_tokenizer):
    monkeypatch.setenv("LM_RECIPES_CACHE", str(tmp_path))
    docs = ["Hello world", "", "Hello"]
    first = tokenization.corpus_tokens(docs, gpt2_tokenizer)
    cached = tokenization.corpus_tokens(docs, gpt2_tokenizer)
    assert cached[0].tolist() == first[0].tolist() == [15496, 995, 50256, 50256, 15496, 50256]
    assert cached[1].tolist() == first[1].tolist() == [True, False, False, True, True, False]


def test_tokenizing_many_texts_is_announced_and_timed_and_a_cache_hit_is_quiet(
    tmp_path, monkeypatch, gpt2_tokenizer, caplog
):
    monkeypatch.setenv("LM_RECIPES_CACHE", str(tmp_path))
    monkeypatch.setattr(tokenization, "MANY_TEXTS", 3)  # 3 texts stand for 50,000
    texts = ["a fine film", "dull", "a long evening"]
    with caplog.at_level("INFO"):
        tokenization.cached("classification", gpt2_tokenizer, [texts], {}, lambda: gpt2_tokenizer(texts))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "tokenizing 3 texts (once: the ids are cached for later runs) ..."
    assert re.fullmatch(r"tokenized 3 texts in \d+\.\d s", lines[1])
    caplog.clear()
    with caplog.at_level("INFO"):
        tokenization.cached("classification", gpt2_tokenizer, [texts], {}, lambda: gpt2_tokenizer(texts))
    assert not caplog.records  # read from the cache: nothing to wait for
