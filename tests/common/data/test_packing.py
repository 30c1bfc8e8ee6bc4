"""Packing for causal LM: documents packed into one block must not see each other."""

import numpy as np
import pytest
import torch

from common.config import ModelConfig
from common.data import tokens as tokenization
from common.model import load as modeling


def test_document_position_ids_restart_at_each_block_and_document_start():
    starts = np.array([[0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0, 0]], dtype=bool)
    assert tokenization.document_position_ids(starts).tolist() == [
        [0, 1, 2, 0, 1, 2, 0],
        list(range(7)),
        [0, 1, 0, 1, 2, 3, 4],
    ]


def test_documents_are_told_apart_by_the_data_not_by_the_end_of_text_token(gpt2_tokenizer, caplog):
    # rendered chat turns end with the end-of-text token inside one document (SmolLM2-Instruct's <|im_end|>)
    eos = gpt2_tokenizer.eos_token
    conversations = [f"hi{eos}hello there{eos}", f"bye{eos}"]
    ids, starts = tokenization.corpus_tokens(conversations, gpt2_tokenizer)
    blocks = tokenization.blocks_from_tokens(ids, len(ids), starts=starts)
    positions = tokenization.document_position_ids(blocks.starts)[0]
    first = len(gpt2_tokenizer(conversations[0], add_special_tokens=False)["input_ids"]) + 1
    assert positions.tolist() == list(range(first)) + list(range(len(ids) - first))  # one restart: the 2nd document
    assert "occurs 3 times inside the documents" in caplog.text and "recipes/chat_sft.py" in caplog.text


def test_rendered_conversations_packed_as_documents_are_each_scored_as_if_alone(tiny_llama):
    # SmolLM2-Instruct's end-of-text token <|im_end|> ends every turn: restarting there (the old way) cut each
    # conversation into turns that could not see each other (held-out perplexity 355.7 where concat read 7.18)
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(tiny_llama)))
    model = modeling.load_causal_lm(ModelConfig(model=str(tiny_llama)), tokenizer).eval()
    model.config.use_cache = False
    conversations = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in [("What is AI?", "The study of thinking machines."), ("Hi", "Hello! How can I help?")]
    ]
    documents = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    ids, starts = tokenization.corpus_tokens(documents, tokenizer)
    assert (ids == tokenizer.eos_token_id).sum() > len(documents)  # <|im_end|> inside the documents too
    block = tokenization.blocks_from_tokens(ids, len(ids), starts=starts)
    positions = tokenization.document_position_ids(block.starts)
    first = int(np.flatnonzero(block.starts[0])[1])  # where the second conversation begins
    with torch.no_grad():
        packed = model(input_ids=torch.tensor(block.ids), position_ids=torch.tensor(positions)).logits[0]
        alone = [
            model(input_ids=torch.tensor([ids[:first]])).logits[0],
            model(input_ids=torch.tensor([ids[first:]])).logits[0],
        ]
    torch.testing.assert_close(packed[:first], alone[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(packed[first:], alone[1], atol=1e-4, rtol=0)


def _starts_after(ids, eos_token_id):
    """Document starts of a stream whose documents hold no end-of-text token: the token after each one."""
    starts = np.zeros(ids.shape, dtype=bool)
    starts[:, 1:] = ids[:, :-1] == eos_token_id
    return starts


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_second_document_in_a_packed_block_is_scored_as_if_alone(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(folder))
    model = modeling.load_causal_lm(ModelConfig(model=folder), tokenizer).eval()
    model.config.use_cache = False  # as Trainer sets it: packed masks are built only without a KV cache
    first = tokenizer("the first document, about cats", add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    second = tokenizer("and a second one about dogs", add_special_tokens=False)["input_ids"]
    block = np.array([first + second])
    positions = tokenization.document_position_ids(_starts_after(block, tokenizer.eos_token_id))
    with torch.no_grad():
        packed = model(input_ids=torch.tensor(block), position_ids=torch.tensor(positions)).logits[0, len(first) :]
        alone = model(input_ids=torch.tensor([second])).logits[0]
        leaky = model(input_ids=torch.tensor(block)).logits[0, len(first) :]  # plain concatenation: it does see doc 1
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-4)


def test_lm_datasets_carry_position_ids_only_when_packing_documents(gpt2_tokenizer):
    ids = np.arange(80).reshape(10, 8)
    every = tokenization.Blocks(ids, ids % 4 == 0)  # a document every 4 tokens
    blocks = {"train": every[:8], "test": every[8:]}
    packed = tokenization.lm_datasets(blocks, {"train": 4}, seed=0, packing="documents")
    plain = tokenization.lm_datasets(blocks, {}, seed=0, packing="concat")
    assert len(packed["train"]) == 4 and "position_ids" in packed["train"].column_names
    assert packed["test"]["position_ids"][0] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert "position_ids" not in plain["train"].column_names and len(plain["train"]) == 8
