"""Class weights, augmentation and the technique flags' checks."""

import argparse

import pandas as pd
import pytest
import torch

from common import augment, cli, data, training
from common.errors import UserError


def test_auto_class_weights_are_inverse_frequency():
    weights = training.class_weights("auto", [0, 0, 0, 1], ["a", "b"])
    assert weights.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert training.class_weights("1,2.5", [0, 1], ["a", "b"]).tolist() == [1.0, 2.5]
    assert training.class_weights(None, [0, 1], ["a", "b"]) is None
    with pytest.raises(UserError, match="needs 2 positive numbers, one per class in the order a, b"):
        training.class_weights("1,2,3", [0, 1], ["a", "b"])
    with pytest.raises(UserError, match="takes 'auto' or numbers"):
        training.class_weights("heavy", [0, 1], ["a", "b"])


def test_weighted_loss_equals_the_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5], [0.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 3.0])
    log_p = torch.log_softmax(logits, dim=-1)
    by_hand = -(1.0 * log_p[0, 0] + 3.0 * log_p[1, 1] + 3.0 * log_p[2, 1]) / (1.0 + 3.0 + 3.0)
    loss = training.WeightedLoss(weights)({"logits": logits}, labels)
    assert loss.item() == pytest.approx(by_hand.item())
    unweighted = torch.nn.functional.cross_entropy(logits, labels)
    assert loss.item() != pytest.approx(unweighted.item())


def test_augment_is_seeded_keeps_labels_and_adds_n_variants():
    train = pd.DataFrame({"text": ["one two three four five", "six seven eight"], "label": ["a", "b"]})
    first = augment.augment(train, ["text"], 3, seed=1)
    assert len(first) == 8 and first["label"].tolist() == ["a", "b"] * 4
    assert first.equals(augment.augment(train, ["text"], 3, seed=1))
    assert not first.equals(augment.augment(train, ["text"], 3, seed=2))
    for original, edited in zip(train["text"].tolist() * 3, first["text"].iloc[2:]):
        assert set(edited.split()) <= set(original.split())  # deletions and swaps only: no new words


def test_augmentation_never_touches_validation_or_test_rows(tmp_path, reviews_frame):
    reviews_frame.to_csv(tmp_path / "train.csv", index=False)
    args = cli.parse(cli.classification_parser("t", max_length=16), ["--train-file", str(tmp_path / "train.csv"), "--augment", "2"])
    plain = cli.parse(cli.classification_parser("t", max_length=16), ["--train-file", str(tmp_path / "train.csv")])
    augmented, _ = data.classification_splits(args)
    reference, _ = data.classification_splits(plain)
    assert len(augmented["train"]) == 3 * len(reference["train"])
    for split in ("validation", "test"):
        assert augmented[split].equals(reference[split])


@pytest.mark.parametrize("flags, message", [
    (["--lora-r", "8", "--gradual-unfreeze", "10"], "--lora-r trains adapters, not layers"),
    (["--merge-lora"], "--merge-lora needs --lora-r"),
    (["--layer-lr-decay", "1.5"], "must be in (0, 1]"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
    (["--gradual-unfreeze", "often"], "expected a number"),
])
def test_contradictory_or_out_of_range_technique_flags_are_one_line_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(cli.classification_parser("t"), flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_early_stopping_keeps_checkpoints_and_restores_the_best(tmp_path):
    parser = cli.classification_parser("t", epochs=1, lr=1e-4, batch_size=4, max_length=16)
    args = cli.parse(parser, ["--early-stopping-patience", "2", "--eval-steps", "10", "--precision", "fp32"])
    targs = training.training_arguments(args, tmp_path)
    assert targs.load_best_model_at_end and targs.metric_for_best_model == "accuracy" and targs.greater_is_better
    assert (targs.eval_strategy, targs.save_strategy, targs.eval_steps) == ("steps", "steps", 10)
    assert [type(c).__name__ for c in training.callbacks(args)] == ["EarlyStoppingCallback"]
    assert training.callbacks(argparse.Namespace()) == []
