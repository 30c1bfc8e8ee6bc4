"""--lm-loss chunked: the same loss and gradients as transformers' own causal-LM loss, without the full logits."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.config import ModelConfig
from common.data import tokens as tokenization
from common.model import lm_loss
from common.model import load as modeling
from common.run import from_argv
from recipes import causal_lm


def standard_loss(hidden, weight, labels, num_items_in_batch=None):
    """transformers' ForCausalLMLoss written out: shift, flatten, cross-entropy in fp32."""
    logits = (hidden @ weight.T).float()
    targets = F.pad(labels, (0, 1), value=-100)[..., 1:].reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, ignore_index=-100)
    return (
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, ignore_index=-100, reduction="sum")
        / num_items_in_batch
    )


def loss_and_grads(fn, hidden, weight, labels, *args, autocast=False):
    hidden, weight = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = fn(hidden, weight, labels, *args)
    loss.backward()
    return loss.detach(), hidden.grad, weight.grad


@pytest.fixture()
def case():
    torch.manual_seed(0)
    batch, length, width, vocab = 3, 100, 16, 500  # 300 tokens: two whole chunks of 128 and a partial one
    labels = torch.randint(0, vocab, (batch, length))
    labels[0, :10] = -100  # ignored positions, as padding or a prompt would be
    return torch.randn(batch, length, width), torch.randn(vocab, width) * 0.3, labels


@pytest.mark.parametrize("num_items", [None, 250])
def test_chunked_loss_and_gradients_equal_the_standard_loss_in_fp32(case, num_items):
    chunked = loss_and_grads(lm_loss.linear_cross_entropy, *case, num_items)
    standard = loss_and_grads(standard_loss, *case, num_items)
    for ours, theirs in zip(chunked, standard):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert chunked[0].item() > 0 and chunked[1].abs().sum() > 0 and chunked[2].abs().sum() > 0


def test_chunked_loss_under_bf16_autocast_matches_the_standard_autocast_loss(case):
    # both round the logits to bf16 in the matmul; only the order of summation differs
    chunked = loss_and_grads(lm_loss.linear_cross_entropy, *case, autocast=True)
    standard = loss_and_grads(standard_loss, *case, autocast=True)
    assert chunked[1].dtype == torch.float32 and chunked[2].dtype == torch.float32  # grads in the parameters' dtype
    torch.testing.assert_close(chunked[0], standard[0], rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(chunked[1:], standard[1:]):
        assert (ours - theirs).norm() / theirs.norm() < 0.01


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_patched_model_trains_on_the_same_loss_and_gradients_and_still_gives_logits_in_eval(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(folder))
    standard = modeling.load_causal_lm(ModelConfig(model=folder), tokenizer).train()
    chunked = modeling.load_causal_lm(ModelConfig(model=folder), tokenizer).train()
    assert lm_loss.use_chunked_loss(chunked)
    for model in (standard, chunked):
        model.config.use_cache = False  # as Trainer sets it: packed masks are built only without a KV cache
    text = "first document about cats" + tokenizer.eos_token + "and a second one, about dogs and their owners"
    ids = torch.tensor([tokenizer(text)["input_ids"]] * 2)
    starts = np.zeros(ids.shape, dtype=bool)
    starts[:, 1:] = ids[:, :-1].numpy() == tokenizer.eos_token_id  # the second document starts after the first's end
    positions = torch.tensor(tokenization.document_position_ids(starts))
    batch = dict(input_ids=ids, labels=ids, position_ids=positions)
    losses = []
    for model in (standard, chunked):
        torch.manual_seed(0)  # the same dropout masks
        loss = model(**batch).loss
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, a), b in zip(standard.named_parameters(), chunked.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    chunked.eval()
    with torch.no_grad():
        out = chunked(**batch)
    assert out.logits.shape == (*ids.shape, chunked.config.vocab_size)  # evaluation still gets logits
    assert out.loss.item() == pytest.approx(losses[0], rel=1e-5)  # no dropout in these tiny models


def test_unsupported_architecture_is_left_alone(tiny_bert):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_bert), is_decoder=True)
    forward = model.forward
    assert not lm_loss.use_chunked_loss(model)
    assert model.forward == forward


def test_recipe_trains_identically_with_either_loss(tiny_llama, tmp_path):
    # also shows that Trainer still passes position_ids (the patched forward keeps the model's signature)
    corpus = tmp_path / "corpus"  # many short documents, so blocks hold document boundaries
    corpus.mkdir()
    for d in range(12):
        (corpus / f"{d}.txt").write_text("\n".join(f"DOC {d} LINE {i}: the quality of mercy." for i in range(6)))
    results = {}
    for loss in ("chunked", "standard"):
        out = tmp_path / loss
        from_argv(
            causal_lm.main,
            causal_lm.DEFAULTS,
            [
                "--model",
                str(tiny_llama),
                "--train-file",
                str(corpus),
                "--block-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--lr",
                "3e-3",
                "--precision",
                "fp32",
                "--lm-loss",
                loss,
                "--prompt",
                "",
                "--logging-steps",
                "1",
                "--output-dir",
                str(out),
            ],
        )
        results[loss] = json.loads((out / "metrics.json").read_text())
        results[loss]["losses"] = [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]
    chunked, standard = results["chunked"], results["standard"]
    assert len(chunked["losses"]) > 0
    np.testing.assert_allclose(chunked["losses"], standard["losses"], rtol=1e-4)
    assert chunked["train_loss"] == pytest.approx(standard["train_loss"], rel=1e-4)
    assert chunked["test_perplexity"] == pytest.approx(standard["test_perplexity"], rel=1e-4)
    assert chunked["test_perplexity"] < chunked["test_perplexity_before"]
