"""Packing for causal LM: documents packed into one block must not see each other."""

import numpy as np
import pytest
import torch

from common.config import ModelConfig
from common.data import tokens as tokenization
from common.model import load as modeling


def test_document_position_ids_restart_after_end_of_text():
    blocks = np.array([[5, 6, 0, 7, 8, 0, 9], [1, 2, 3, 4, 5, 6, 7]])
    assert tokenization.document_position_ids(blocks, eos_token_id=0).tolist() == [
        [0, 1, 2, 0, 1, 2, 0],
        list(range(7)),
    ]


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
    positions = tokenization.document_position_ids(block, tokenizer.eos_token_id)
    with torch.no_grad():
        packed = model(input_ids=torch.tensor(block), position_ids=torch.tensor(positions)).logits[0, len(first) :]
        alone = model(input_ids=torch.tensor([second])).logits[0]
        leaky = model(input_ids=torch.tensor(block)).logits[0, len(first) :]  # plain concatenation: it does see doc 1
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-4)


def test_lm_datasets_carry_position_ids_only_when_packing_documents(gpt2_tokenizer):
    blocks = {"train": np.arange(64).reshape(8, 8), "test": np.arange(16).reshape(2, 8)}
    packed = tokenization.lm_datasets(blocks, {"train": 4}, seed=0, packing="documents", eos_token_id=3)
    plain = tokenization.lm_datasets(blocks, {}, seed=0, packing="concat", eos_token_id=3)
    assert len(packed["train"]) == 4 and "position_ids" in packed["train"].column_names
    assert packed["test"]["position_ids"][0] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert "position_ids" not in plain["train"].column_names and len(plain["train"]) == 8
