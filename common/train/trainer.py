"""RecipeTrainer: Trainer plus what the recipes need of it, and no training loop of its own.

- resumable data order: length-grouped batches seeded by (seed, epoch), so a resumed run sees what it would have
- evaluation in dataset order, and per document for long-text windows (a `document` column)
- a stop with one clear line when the logged loss is NaN/inf (no per-step check: that would sync the GPU)
- optimizer parameter groups and callbacks from common.train.techniques
"""

from __future__ import annotations

import logging
import math
import time

import datasets
import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.trainer_utils import PredictionOutput

from common.config import TrainingConfig
from common.data import long_text
from common.errors import UserError
from common.train.checkpoints import MarkCompleteCheckpoints, check_same_data, clear_previous_run, data_fingerprint
from common.train.projection import ProjectedTime

logger = logging.getLogger(__name__)

ENOUGH_STEPS = TrainingConfig.enough_steps  # a classifier's; a kind of run's own is its training group's


class RecipeTrainer(Trainer):
    """Trainer, plus `parameter_groups(model, lr, weight_decay) -> [groups]` to build the optimizer's groups
    (common.train.techniques makes it for --layer-lr-decay and --gradual-unfreeze), and `batch_mean_loss` for
    losses that are a plain mean over the batch (classifiers), so that --grad-accum divides them."""

    def __init__(
        self,
        *args,
        parameter_groups=None,
        callbacks=None,
        run_config: dict | None = None,
        batch_mean_loss: bool = False,
        training: TrainingConfig | None = None,
        **kwargs,
    ):
        self.parameter_groups = parameter_groups
        self.training = training or TrainingConfig()  # how many steps are enough, and what gives more
        self.fit_logging_to_run = run_config is not None and run_config.get("logging_steps") is None
        self.marker = MarkCompleteCheckpoints(run_config)
        callbacks = [*(callbacks or []), self.marker]
        super().__init__(*args, callbacks=callbacks, **kwargs)
        if self.args.torch_compile:
            self.add_callback(CompileReport)
        if self.pop_callback(ProgressCallback) is not None:  # present unless --disable_tqdm
            self.add_callback(ReadableProgress)
        examples = len(self.train_dataset) if hasattr(self.train_dataset, "__len__") else None
        evaluated = len(self.eval_dataset) if hasattr(self.eval_dataset, "__len__") else 0
        self.add_callback(ProjectedTime(examples, self.args.num_train_epochs, evaluated))  # the time it will take
        if batch_mean_loss:
            # A classifier's loss (the model's own or common.train.losses') is a mean over its micro-batch, whatever
            # the batch's size. Trainer assumes a loss that takes num_items_in_batch (or a compute_loss_func) was
            # already divided over the whole --grad-accum step, and would add up N means: N times the gradient.
            self.loss_is_scaled_for_ga = False

    def train(self, resume_from_checkpoint=None, **kwargs):
        if resume_from_checkpoint is None:
            # A fresh start (--overwrite): the earlier run's checkpoints and curves must not be resumed into or mixed
            # with this run's. They go only now, after the data and the model have loaded without error.
            clear_previous_run(self.args.output_dir, self._tensorboard_folder())
        self.marker.data = data_fingerprint(self.train_dataset)
        if resume_from_checkpoint:
            check_same_data(resume_from_checkpoint, self.marker.data)
        self._plan_steps()
        try:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        except BaseException:  # a NaN stop, Ctrl-C, SIGTERM: end the progress bar's line before the message
            self._close_progress_bar()
            raise

    def _plan_steps(self) -> None:
        """Before training: count the optimizer steps. Too few for a model to learn much is said in one warning
        line with the fix (a run of 4 steps otherwise ended in a report with no hint that nothing was learned);
        an unset --logging-steps is fitted to the run, so that its curve has points."""
        if self.train_dataset is None or self.args.max_steps > 0:
            return
        examples, epochs = len(self.train_dataset), self.args.num_train_epochs
        batch = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        steps = math.ceil(math.ceil(examples / batch) * epochs)
        if self.fit_logging_to_run:
            self.args.logging_steps = max(1, min(self.args.logging_steps, steps // 10))
        enough = self.training.enough_steps
        if steps >= enough:
            return
        logger.warning(
            "only %d optimizer steps (%d training examples, batch %d, %g epoch%s): too few for the model to "
            "learn much; for %d or more use %s",
            steps,
            examples,
            batch,
            epochs,
            "" if epochs == 1 else "s",
            enough,
            " or ".join(self.training.more_steps(examples, epochs, batch)),
        )

    def _close_progress_bar(self) -> None:
        for callback in self.callback_handler.callbacks:
            if getattr(callback, "training_bar", None) is not None:
                callback.training_bar.close()
                callback.training_bar = None

    def _tensorboard_folder(self) -> str | None:
        board = next((c for c in self.callback_handler.callbacks if isinstance(c, TensorBoardCallback)), None)
        return getattr(board, "logging_dir", None)

    # ---- --long-text sliding-window: evaluate per document, not per window
    _keep_eval_order = False

    def _get_eval_sampler(self, eval_dataset):
        if self._keep_eval_order:  # windows must come back in dataset order to be regrouped by document
            return torch.utils.data.SequentialSampler(eval_dataset)
        return super()._get_eval_sampler(eval_dataset)

    def predict_in_order(self, dataset, ignore_keys=None, metric_key_prefix="test") -> PredictionOutput:
        """predict() with the rows in dataset order (eval batches are otherwise length-grouped); long-text windows
        (a `document` column) come back as one row of averaged logits, and one label, per document."""
        self._keep_eval_order = True
        try:
            output = self.predict(dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            self._keep_eval_order = False
        if "document" not in dataset.column_names:
            return output
        document = np.asarray(dataset["document"])
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        return PredictionOutput(
            long_text.mean_by_document(logits, document),
            long_text.first_by_document(output.label_ids, document),
            output.metrics,
        )

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if not (isinstance(dataset, datasets.Dataset) and "document" in dataset.column_names):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        output = self.predict_in_order(dataset, ignore_keys, metric_key_prefix)
        prefix = metric_key_prefix
        metrics = {
            f"{prefix}_loss": output.metrics[f"{prefix}_loss"],
            f"{prefix}_windows": len(dataset),
            f"{prefix}_documents": len(output.predictions),
        }
        metrics.update({f"{prefix}_{k}": v for k, v in self.compute_metrics(EvalPrediction(*output[:2])).items()})
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def get_train_dataloader(self):
        # Under --compile a last, smaller batch is a new shape that would be compiled again (a 95 s stall at the
        # end of a causal-LM epoch on an H100): training drops it. Evaluation keeps every example.
        keep = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = keep or self.args.torch_compile
        try:
            return super().get_train_dataloader()
        finally:
            self.args.dataloader_drop_last = keep

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededLengthGroupedSampler(sampler, self.args.data_seed or self.args.seed, self.args.world_size)
        return sampler

    # ---- a NaN/inf loss stops the run. Checked when the loss is logged, and before an evaluation or a checkpoint
    #      (the loss summed since the last log): a check each step would make the host wait for the GPU each step
    #      (TrainingArguments' logging_nan_inf_filter is off for the same reason)
    _finite_through_step = 0

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._stop_unless_finite(logs.get("loss", logs.get("train_loss")))
        super().log(logs, start_time)

    def _maybe_log_save_evaluate(self, tr_loss, *args, **kwargs):
        if self.control.should_evaluate or self.control.should_save:  # a model gone NaN is not evaluated or saved
            self._stop_unless_finite(tr_loss.item())
        return super()._maybe_log_save_evaluate(tr_loss, *args, **kwargs)

    def _stop_unless_finite(self, loss: float | None) -> None:
        if loss is None:
            return
        if not math.isfinite(loss):
            first, last = self._finite_through_step + 1, self.state.global_step
            steps = f"at step {last}" if first >= last else f"between steps {first} and {last}"
            raise UserError(
                f"the training loss became {loss} {steps}; lower --lr (now {self.args.learning_rate:g}) "
                f"or try --precision fp32"
            )
        self._finite_through_step = self.state.global_step

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.parameter_groups is not None:
            groups = self.parameter_groups(model or self.model, self.args.learning_rate, self.args.weight_decay)
            optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model or self.model)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return super().create_optimizer(model)


def compiled_frames() -> int:
    """How many times torch.compile has compiled a frame in this process (dynamo's own count)."""
    from torch._dynamo.utils import counters

    return counters["frames"]["ok"]


class ReadableProgress(ProgressCallback):
    """Trainer's progress bar, with each log written as one line of numbers rather than a dict of strings:
    `step 25/375  loss 0.5315  grad_norm 7.267  learning_rate 0.0002833  epoch 0.3125`."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None:
            shown = " ".join(
                f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
                for name, value in logs.items()
                if name != "total_flos" and isinstance(value, (int, float))
            )
            self.training_bar.write(f"step {state.global_step}/{state.max_steps}  {shown}")


class CompileReport(TrainerCallback):
    """Added under --compile: what compiling cost, logged when training ends: the steps during which torch.compile
    compiled (the first, and each recompile: a new shape or a changed guard), and their time."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.compiling_steps: list[float] = []
        self.usual: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started, self.frames = time.perf_counter(), compiled_frames()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self.started
        (self.compiling_steps if compiled_frames() > self.frames else self.usual).append(seconds)

    def on_train_end(self, args, state, control, **kwargs):
        if not (self.compiling_steps or self.usual):
            return
        usual = float(np.median(self.usual)) if self.usual else float("nan")
        logger.info(
            "--compile: %d step(s) compiled, %.1f s in all (the first compile, then %d recompile(s)); a usual "
            "step %.3f s",
            len(self.compiling_steps),
            sum(self.compiling_steps),
            max(0, len(self.compiling_steps) - 1),
            usual,
        )


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose order depends only on (seed, epoch).

    Trainer's own draws from the global random stream, whose state at the start of an epoch is not in a
    checkpoint, so a resumed run would see epoch 2 in another order. Trainer calls set_epoch() each epoch.
    Groups are cut for the global batch: with N processes, accelerate hands each its share of every global
    batch, so one process and N see the same examples in each step.
    """

    def __init__(self, sampler: LengthGroupedSampler, seed: int, processes: int = 1):
        self.__dict__.update(vars(sampler))
        self.batch_size = sampler.batch_size * processes
        self.seed = seed
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + int(epoch))

    def __iter__(self):
        return iter(length_grouped_indices(self.lengths, self.batch_size, self.generator))


MIN_BATCHES_PER_GROUP = 16


def length_grouped_indices(lengths, batch_size: int, generator: torch.Generator) -> list[int]:
    """transformers' length grouping (shuffle, sort groups of up to 50 batches by length, cut into batches),
    with groups of at least 16 batches where the data has that many.

    transformers' rule keeps 4 groups per epoch, so at a large batch a group holds few batches and each batch
    spans a wide range of lengths: 31-34% padding at batch 512 on the sentiment data (measured on an H100).
    Where that rule gives fewer than 16 batches a group, the groups grow to 16 and their batches are shuffled
    (longest first), so the long-to-short order within a group does not become the order of the epoch. At the
    recipes' default batch sizes the rule gives 50 and nothing changes.
    """
    standard = max(1, min(len(lengths) // (batch_size * 4), 50))
    grown = min(len(lengths) // batch_size, MIN_BATCHES_PER_GROUP)
    if grown <= standard:
        return get_length_grouped_indices(lengths, batch_size, standard, generator)
    indices = get_length_grouped_indices(lengths, batch_size, grown, generator)
    group = grown * batch_size
    shuffled = []
    for start in range(0, len(indices), group):
        batches = [indices[i : i + batch_size] for i in range(start, min(start + group, len(indices)), batch_size)]
        keep = 1 if start == 0 else 0  # the epoch's first batch holds its longest example: out of memory early
        order = list(range(keep)) + [keep + i for i in torch.randperm(len(batches) - keep, generator=generator)]
        shuffled += [i for b in order for i in batches[b]]
    return shuffled
