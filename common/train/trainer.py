"""RecipeTrainer: Trainer plus what the recipes need of it, and no training loop of its own.

- resumable data order: length-grouped batches seeded by (seed, epoch), so a resumed run sees what it would have
- evaluation in dataset order, and per document for long-text windows (a `document` column)
- a stop with one clear line when the logged loss is NaN/inf (no per-step check: that would sync the GPU)
- optimizer parameter groups and callbacks from common.train.techniques

Public hooks only, but for the few private ones in common.train.internals (checked when a trainer is made).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time

import datasets
import numpy as np
import torch
from transformers import EarlyStoppingCallback, EvalPrediction, Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.trainer_utils import PredictionOutput

from common.config import RunConfig, TrainingConfig
from common.data import long_text
from common.errors import UserError
from common.train import internals
from common.train.checkpoints import MarkCompleteCheckpoints, check_same_data, clear_previous_run, data_fingerprint
from common.train.projection import ProjectedTime

logger = logging.getLogger(__name__)


class RecipeTrainer(internals.PrivateHooks):
    """Trainer for a run of `config` (the typed run configuration; optional for a bare Trainer's uses), plus
    `parameter_groups(model, lr, weight_decay) -> [groups]` to build the optimizer's groups (common.train.techniques
    makes it for --layer-lr-decay and --gradual-unfreeze). From the run it takes: the settings each checkpoint
    records (--resume compares them), --early-stopping-patience, how many steps are enough, an unset
    --logging-steps fitted to the run, and whether the loss is a plain mean over the batch (classifiers), which
    --grad-accum must divide."""

    def __init__(self, *args, config: RunConfig | None = None, parameter_groups=None, callbacks=None, **kwargs):
        internals.check()
        self.parameter_groups = parameter_groups
        self.training = config.training if config is not None else TrainingConfig()  # how many steps are enough
        if config is not None and config.training.logging_steps is None and kwargs.get("args") is not None:
            kwargs["args"] = fit_logging_steps(kwargs["args"], kwargs.get("train_dataset"))
        self.marker = MarkCompleteCheckpoints(config.flat() if config is not None else None)
        callbacks = [*(callbacks or []), self.marker, FiniteWeights()]
        if self.training.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=self.training.early_stopping_patience))
        self.user_metrics = kwargs.get("compute_metrics")
        if self.user_metrics is not None:
            kwargs["compute_metrics"] = self.metrics_by_document
        super().__init__(*args, callbacks=callbacks, **kwargs)
        if self.args.torch_compile:
            self.add_callback(CompileReport)
        self.progress = None
        if self.pop_callback(ProgressCallback) is not None:  # present unless --disable_tqdm
            self.progress = ReadableProgress()
            self.add_callback(self.progress)
        examples = len(self.train_dataset) if hasattr(self.train_dataset, "__len__") else None
        evaluated = len(self.eval_dataset) if hasattr(self.eval_dataset, "__len__") else 0
        self.add_callback(ProjectedTime(examples, self.args.num_train_epochs, evaluated))  # the time it will take
        if config is not None and not config.loss_per_token:
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
        self._warn_of_too_few_steps()
        try:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        except BaseException:  # a NaN stop, Ctrl-C, SIGTERM: end the progress bar's line before the message
            if self.progress is not None:
                self.progress.close()
            raise

    def _warn_of_too_few_steps(self) -> None:
        """Before training: too few optimizer steps for a model to learn much is said in one warning line with the
        fix (a run of 4 steps otherwise ended in a report with no hint that nothing was learned)."""
        steps = planned_steps(self.args, self.train_dataset)
        if steps is None or steps >= self.training.enough_steps:
            return
        examples, epochs, enough = len(self.train_dataset), self.args.num_train_epochs, self.training.enough_steps
        batch = global_batch(self.args)
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

    def _tensorboard_folder(self) -> str | None:
        """Where Trainer's TensorBoard callback writes (common.train.arguments sets it for --report-to)."""
        return os.environ.get("TENSORBOARD_LOGGING_DIR") if "tensorboard" in self.args.report_to else None

    # ---- --long-text sliding-window: evaluate per document, not per window
    _keep_eval_order = False
    _documents: np.ndarray | None = None  # while evaluating windows: each window's document

    def eval_sampler(self, dataset, sampler):
        if self._keep_eval_order:  # windows must come back in dataset order to be regrouped by document
            return torch.utils.data.SequentialSampler(dataset)
        return sampler

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
        return PredictionOutput(*by_document(output, np.asarray(dataset["document"])), output.metrics)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluation; long-text windows (a `document` column) are scored per document, the loss per
        window (metrics_by_document)."""
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if not (isinstance(dataset, datasets.Dataset) and "document" in dataset.column_names):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        self._keep_eval_order, self._documents = True, np.asarray(dataset["document"])
        try:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        finally:
            self._keep_eval_order, self._documents = False, None

    def metrics_by_document(self, prediction: EvalPrediction) -> dict:
        """The recipe's compute_metrics; while evaluate() scores windows, on their logits averaged per document."""
        if self._documents is None:
            return self.user_metrics(prediction)
        documents = EvalPrediction(*by_document(prediction, self._documents))
        return {
            "windows": len(self._documents),
            "documents": len(documents.predictions),
            **self.user_metrics(documents),
        }

    def get_train_dataloader(self):
        # Under --compile a last, smaller batch is a new shape that would be compiled again (a 95 s stall at the
        # end of a causal-LM epoch on an H100): training drops it. Evaluation keeps every example.
        keep = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = keep or self.args.torch_compile
        try:
            return super().get_train_dataloader()
        finally:
            self.args.dataloader_drop_last = keep

    def train_sampler(self, sampler):
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed or self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.lengths, sampler.batch_size, seed, self.args.world_size)
        return sampler

    # ---- a NaN/inf loss stops the run. Checked when the loss is logged, and the weights before an evaluation or a
    #      checkpoint (FiniteWeights): a check each step would make the host wait for the GPU each step
    #      (TrainingArguments' logging_nan_inf_filter is off for the same reason)
    _finite_through_step = 0

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        loss = logs.get("loss", logs.get("train_loss"))
        if loss is not None and not math.isfinite(loss):
            stop(f"the training loss became {loss}", self._finite_through_step, self.state, self.args)
        if loss is not None:
            self._finite_through_step = self.state.global_step
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.parameter_groups is not None:
            groups = self.parameter_groups(model or self.model, self.args.learning_rate, self.args.weight_decay)
            optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model or self.model)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return super().create_optimizer(model)


def by_document(output, document: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long-text windows' (logits, labels), from a prediction or evaluation `output`, as one row per document: the
    mean of its windows' logits and its first window's label."""
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return long_text.mean_by_document(logits, document), long_text.first_by_document(output.label_ids, document)


def global_batch(args) -> int:
    """Examples per optimizer step: the micro-batch, times --grad-accum, times the processes."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def planned_steps(args, dataset) -> int | None:
    """The optimizer steps a run of `args` takes over `dataset` (None: set by max_steps, or no dataset)."""
    if dataset is None or args.max_steps > 0 or not hasattr(dataset, "__len__"):
        return None
    return math.ceil(math.ceil(len(dataset) / global_batch(args)) * args.num_train_epochs)


def fit_logging_steps(args, dataset):
    """`args` with an unset --logging-steps fitted to the run, so that its loss curve has 10 points or more (a new
    TrainingArguments: Trainer is never handed arguments changed behind its back)."""
    steps = planned_steps(args, dataset)
    if steps is None:
        return args
    return dataclasses.replace(args, logging_steps=max(1, min(args.logging_steps, steps // 10)))


def stop(what: str, finite_through_step: int, state, args) -> None:
    """Stop the run in one line: `what` happened since the last step known finite, and the fix."""
    first, last = finite_through_step + 1, state.global_step
    steps = f"at step {last}" if first >= last else f"between steps {first} and {last}"
    raise UserError(f"{what} {steps}; lower --lr (now {args.learning_rate:g}) or try --precision fp32")


class FiniteWeights(TrainerCallback):
    """Before an evaluation or a checkpoint (Trainer decides them at the end of a step): a model whose weights are
    no longer finite numbers is not evaluated or saved; the run stops in one line. A check here, not per step:
    reading a value back makes the host wait for the GPU."""

    finite_through_step = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or not (control.should_evaluate or control.should_save):
            return
        trained = [torch.isfinite(p).all() for p in model.parameters() if p.requires_grad]
        if not trained or bool(torch.stack(trained).all()):  # one read-back
            self.finite_through_step = state.global_step
            return
        stop(
            "the model's weights became NaN or inf (the training loss diverged)", self.finite_through_step, state, args
        )


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

    def close(self) -> None:
        """End the bar's line now (a stop's message then starts on a line of its own)."""
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None


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


class EpochSeededLengthGroupedSampler(torch.utils.data.Sampler):
    """Length-grouped batches whose order depends only on (seed, epoch).

    Trainer's own draws from the global random stream, whose state at the start of an epoch is not in a
    checkpoint, so a resumed run would see epoch 2 in another order. Trainer calls set_epoch() each epoch.
    Groups are cut for the global batch: with N processes, accelerate hands each its share of every global
    batch, so one process and N see the same examples in each step.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, processes: int = 1):
        self.lengths = lengths
        self.batch_size = batch_size * processes
        self.seed = seed
        self.generator = torch.Generator()
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.lengths)

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
