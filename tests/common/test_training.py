import argparse

import pytest
import torch

from common import cli, training
from common.errors import UserError


def recipe_args(**overrides):
    """The flags as a recipe parses them (so new flags get their real defaults), then `overrides`."""
    parser = cli.classification_parser("test", epochs=1.0, lr=1e-4, batch_size=4, max_length=16)
    args = cli.parse(parser, ["--seed", "7", "--logging-steps", "5", "--precision", "fp32"])
    return argparse.Namespace(**{**vars(args), **overrides})


def test_training_arguments_follow_the_flags(tmp_path):
    targs = training.training_arguments(recipe_args(), tmp_path)
    assert (targs.learning_rate, targs.per_device_train_batch_size, targs.per_device_eval_batch_size) == (1e-4, 4, 8)
    assert targs.seed == 7 and targs.data_seed == 7
    assert targs.eval_strategy == "epoch" and targs.save_strategy == "no"
    assert targs.train_sampling_strategy == "group_by_length"
    assert not targs.bf16 and not targs.fp16


def test_precision_auto_uses_bf16_exactly_when_it_is_fast():
    assert training.precision_flags("auto")["bf16"] == training.bf16_is_fast()
    assert training.precision_flags("fp32") == {"bf16": False, "fp16": False}
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
            training.precision_flags("fp16")


def test_length_grouped_order_depends_only_on_seed_and_epoch():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [5, 30, 7, 12, 40, 3, 22, 9] * 4

    def order(epoch, noise):
        torch.manual_seed(noise)  # the global stream must not matter (it is not saved in a checkpoint)
        sampler = training.EpochSeededLengthGroupedSampler(LengthGroupedSampler(4, lengths=lengths), seed=42)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, noise=0) == order(1, noise=123)
    assert order(0, noise=0) != order(1, noise=0)
    assert sorted(order(1, noise=0)) == list(range(len(lengths)))
