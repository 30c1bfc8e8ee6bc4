import torch

from common.train.trainer import EpochSeededLengthGroupedSampler


def test_length_grouped_order_depends_only_on_seed_and_epoch():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [5, 30, 7, 12, 40, 3, 22, 9] * 4

    def order(epoch, noise):
        torch.manual_seed(noise)  # the global stream must not matter (it is not saved in a checkpoint)
        sampler = EpochSeededLengthGroupedSampler(LengthGroupedSampler(4, lengths=lengths), seed=42)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, noise=0) == order(1, noise=123)
    assert order(0, noise=0) != order(1, noise=0)
    assert sorted(order(1, noise=0)) == list(range(len(lengths)))
