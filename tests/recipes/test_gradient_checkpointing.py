"""--gradient-checkpointing: activations recomputed in the backward pass; the same training, in less memory."""

import pytest
from transformers import PreTrainedModel

from recipes import bert_classification, causal_lm
from tests.recipes.test_grad_accum import EXACT, run


@pytest.fixture
def checkpointed(monkeypatch) -> list[str]:
    """The class names of the models Trainer switched activation checkpointing on for."""
    switched_on, enable = [], PreTrainedModel.activation_checkpointing_enable

    def recording(model, *args, **kwargs):
        switched_on.append(type(model).__name__)
        return enable(model, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "activation_checkpointing_enable", recording)
    return switched_on


def test_a_classifier_with_lora_trains_the_same_with_gradient_checkpointing(
    tiny_bert, reviews_csv, tmp_path, checkpointed
):
    args = ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--batch-size", "8", "--lora-r", "4", *EXACT]
    kept, kept_metrics = run(bert_classification, args, tmp_path / "kept")
    assert checkpointed == []
    recomputed, metrics = run(bert_classification, [*args, "--gradient-checkpointing"], tmp_path / "recomputed")
    assert len(recomputed) == len(kept) > 2 and kept[0] != kept[-1]
    assert checkpointed == ["BertForSequenceClassification"]
    assert recomputed == pytest.approx(kept, abs=1e-5)
    assert metrics["test_loss"] == pytest.approx(kept_metrics["test_loss"], abs=1e-5)


def test_a_causal_lm_with_frozen_embeddings_trains_the_same_with_gradient_checkpointing(
    tiny_llama, tmp_path, checkpointed
):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Line {i}: a player speaks {i % 7} words." for i in range(120)))
    args = ["--model", str(tiny_llama), "--train-file", str(corpus), "--batch-size", "4", "--block-size", "32",
            "--prompt", "", "--freeze-embeddings", *EXACT]  # fmt: skip
    kept, _ = run(causal_lm, args, tmp_path / "kept")
    recomputed, _ = run(causal_lm, [*args, "--gradient-checkpointing"], tmp_path / "recomputed")
    assert len(recomputed) == len(kept) > 2 and kept[0] != kept[-1]
    assert checkpointed == ["LlamaForCausalLM"]
    assert recomputed == pytest.approx(kept, abs=1e-5)
