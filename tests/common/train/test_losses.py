"""The loss registry: class weights, weighted cross-entropy, focal loss, and what technique_hooks builds."""

import pytest
import torch

from common.config.groups import LOSSES as LOSS_CHOICES
from common.errors import UserError
from common.train import losses, technique_hooks
from tests.conftest import classification_config

LOGITS = torch.tensor([[2.0, 0.0], [0.5, 1.5], [0.0, 0.0], [-1.0, 3.0]])
LABELS = torch.tensor([0, 1, 1, 0])


def test_the_loss_flag_offers_exactly_the_registered_losses():
    assert LOSS_CHOICES == list(losses.LOSSES)


def test_auto_class_weights_are_inverse_frequency():
    weights = losses.class_weights("auto", [0, 0, 0, 1], ["a", "b"])
    assert weights.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert losses.class_weights("1,2.5", [0, 1], ["a", "b"]).tolist() == [1.0, 2.5]
    assert losses.class_weights(None, [0, 1], ["a", "b"]) is None
    with pytest.raises(UserError, match="needs 2 positive numbers, one per class in the order a, b"):
        losses.class_weights("1,2,3", [0, 1], ["a", "b"])
    with pytest.raises(UserError, match="needs 2 positive numbers"):
        losses.class_weights("nan,1", [0, 1], ["a", "b"])
    with pytest.raises(UserError, match="takes 'auto' or numbers"):
        losses.class_weights("heavy", [0, 1], ["a", "b"])


def test_weighted_loss_equals_the_hand_computed_value():
    logits, labels = LOGITS[:3], LABELS[:3]
    weights = torch.tensor([1.0, 3.0])
    log_p = torch.log_softmax(logits, dim=-1)
    by_hand = -(1.0 * log_p[0, 0] + 3.0 * log_p[1, 1] + 3.0 * log_p[2, 1]) / (1.0 + 3.0 + 3.0)
    loss = losses.WeightedCrossEntropy(weights)({"logits": logits}, labels)
    assert loss.item() == pytest.approx(by_hand.item())
    assert loss.item() != pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_focal_loss_equals_the_hand_computed_value_and_gamma_0_is_cross_entropy():
    p_true = LOGITS.softmax(-1)[torch.arange(4), LABELS]
    by_hand = (-((1 - p_true) ** 2) * p_true.log()).mean()
    assert losses.FocalLoss(2.0)({"logits": LOGITS}, LABELS).item() == pytest.approx(by_hand.item())
    plain = torch.nn.functional.cross_entropy(LOGITS, LABELS)
    assert losses.FocalLoss(0.0)({"logits": LOGITS}, LABELS).item() == pytest.approx(plain.item())
    weights = torch.tensor([1.0, 3.0])
    weighted = losses.FocalLoss(0.0, weights)({"logits": LOGITS}, LABELS)
    assert weighted.item() == pytest.approx(losses.WeightedCrossEntropy(weights)({"logits": LOGITS}, LABELS).item())


def test_focal_loss_weighs_confident_right_answers_less_than_cross_entropy():
    easy = torch.tensor([[4.0, 0.0]])  # p_true ~ 0.98
    hard = torch.tensor([[0.0, 0.5]])  # p_true ~ 0.38
    label = torch.tensor([0])
    ratio = [
        (losses.FocalLoss(2.0)({"logits": x}, label) / torch.nn.functional.cross_entropy(x, label)).item()
        for x in (easy, hard)
    ]
    assert ratio[0] < 0.001 and ratio[1] > 0.3


def test_technique_hooks_build_the_chosen_loss_and_callbacks(tiny_bert):
    from common.config import ModelConfig
    from common.model import layers, load_classifier, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_bert))
    model = load_classifier(ModelConfig(model=str(tiny_bert)), ["a", "b"], tokenizer)
    plain = technique_hooks(classification_config().techniques, model, [0, 1, 1], ["a", "b"])
    assert plain == {"callbacks": [], "compute_loss_func": None, "parameter_groups": None}  # the model's own loss
    weighted = technique_hooks(classification_config(class_weights="auto").techniques, model, [0, 1, 1], ["a", "b"])
    assert isinstance(weighted["compute_loss_func"], losses.WeightedCrossEntropy)
    focal_run = classification_config(loss="focal", focal_gamma=1.5, label_smoothing=0.1, gradual_unfreeze=5)
    focal = technique_hooks(focal_run.techniques, model, [0, 1, 1], ["a", "b"])
    assert isinstance(focal["compute_loss_func"], losses.FocalLoss)
    assert (focal["compute_loss_func"].gamma, focal["compute_loss_func"].label_smoothing) == (1.5, 0.1)
    assert [type(c) for c in focal["callbacks"]] == [layers.GradualUnfreezing]
    assert focal["parameter_groups"] is not None  # every parameter in a group, so unfrozen ones are updated


def test_the_trainer_takes_from_the_run_what_is_not_a_technique(tiny_bert, tmp_path):
    """The settings each checkpoint records (for --resume), early stopping, how many steps are enough, and a
    classifier's plain-mean loss, which --grad-accum must divide (tests/recipes/test_grad_accum.py)."""
    from transformers import EarlyStoppingCallback, TrainingArguments

    from common.config import ModelConfig
    from common.model import load_classifier, load_tokenizer
    from common.train import RecipeTrainer

    tokenizer = load_tokenizer(str(tiny_bert))
    model = load_classifier(ModelConfig(model=str(tiny_bert)), ["a", "b"], tokenizer)
    config = classification_config(early_stopping_patience=2, eval_steps=5)
    args = TrainingArguments(tmp_path, report_to=[], use_cpu=True)
    trainer = RecipeTrainer(config=config, model=model, args=args)
    assert trainer.marker.run_config == config.flat() and trainer.training == config.training
    assert any(isinstance(c, EarlyStoppingCallback) for c in trainer.callback_handler.callbacks)
    assert trainer.loss_is_scaled_for_ga is False
    bare = RecipeTrainer(model=model, args=args)  # no run: Trainer's own behaviour
    assert bare.marker.run_config is None and bare.loss_is_scaled_for_ga is None
