"""The private parts of transformers' Trainer that the recipes rely on, all in this file.

Everything else RecipeTrainer does goes through public hooks: callbacks, `log`, `evaluate`/`predict`,
`compute_metrics`, `create_optimizer`, `get_train_dataloader`, `loss_is_scaled_for_ga` (a documented class
attribute). What remains private is here because no public hook reaches it:

- `Trainer._get_train_sampler`: the only place a sampler is chosen without rebuilding the DataLoader (and
  accelerate's preparation of it). Ours orders length-grouped batches by (seed, epoch), so a resumed run sees the
  batches the uninterrupted run would have; Trainer's own draws from the global random stream, which no
  checkpoint holds.
- `Trainer._get_eval_sampler`: evaluation is length-grouped too; long-text windows and the test predictions must
  come back in dataset order to be regrouped by document and matched to their rows.
- `LengthGroupedSampler.lengths`: the lengths transformers measured (or read from a `length` column), which
  our sampler orders.
- `ProgressCallback.training_bar`: the tqdm bar our progress callback (a subclass) writes each log line under,
  and closes before a stop's message, so that the message starts on a line of its own.

`check()` runs when a RecipeTrainer is made: a name that moved in a transformers upgrade stops the run in one line
naming the installed version and this file, instead of training in a silently different order.
"""

from __future__ import annotations

import inspect

import transformers
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from common.errors import UserError


def _has_method(owner: type, name: str, *parameters: str):
    def present() -> bool:
        method = getattr(owner, name, None)
        return callable(method) and list(inspect.signature(method).parameters)[: len(parameters)] == list(parameters)

    return present


def _sampler_has_lengths() -> bool:
    return getattr(LengthGroupedSampler(2, lengths=[3, 1]), "lengths", None) == [3, 1]


def _progress_has_a_training_bar() -> bool:
    return "training_bar" in vars(ProgressCallback())


# name -> (what we need of it, how to see that it is still there)
PRIVATE = {
    "Trainer._get_train_sampler": (
        "_get_train_sampler(self, train_dataset) returning the sampler",
        _has_method(Trainer, "_get_train_sampler", "self", "train_dataset"),
    ),
    "Trainer._get_eval_sampler": (
        "_get_eval_sampler(self, eval_dataset) returning the sampler",
        _has_method(Trainer, "_get_eval_sampler", "self", "eval_dataset"),
    ),
    "LengthGroupedSampler.lengths": (
        "LengthGroupedSampler(batch_size, lengths=...).lengths",
        _sampler_has_lengths,
    ),
    "ProgressCallback.training_bar": (
        "ProgressCallback().training_bar, the training progress bar (None until training begins)",
        _progress_has_a_training_bar,
    ),
}


def moved() -> list[str]:
    """The private names that are no longer as the recipes use them."""
    return [name for name, (_, present) in PRIVATE.items() if not present()]


def check() -> None:
    gone = moved()
    if gone:
        name = gone[0]
        raise UserError(
            f"transformers {transformers.__version__} has changed {name}, which the recipes rely on "
            f"({PRIVATE[name][0]}; see common/train/internals.py); install the version requirements.txt names"
        )


class PrivateHooks(Trainer):
    """The overrides of Trainer's private methods, each handing over to a public-named method of the subclass."""

    def train_sampler(self, sampler):
        """The sampler to train with, given the one Trainer chose."""
        return sampler

    def eval_sampler(self, dataset, sampler):
        """The sampler to evaluate or predict with, given the one Trainer chose."""
        return sampler

    def _get_train_sampler(self, train_dataset=None):
        return self.train_sampler(super()._get_train_sampler(train_dataset))

    def _get_eval_sampler(self, eval_dataset):
        return self.eval_sampler(eval_dataset, super()._get_eval_sampler(eval_dataset))
