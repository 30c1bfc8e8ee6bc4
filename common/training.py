"""Training helpers around Trainer: arguments with sane defaults, mixed precision, evaluation, saving.

The training loop, devices and distribution all stay with Trainer/accelerate; this module only chooses
settings and writes results.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import EarlyStoppingCallback, EvalPrediction, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PredictionOutput

from common import layers, long_text, outputs
from common.errors import UserError
from common.metrics import add_perplexity

logger = logging.getLogger(__name__)


def bf16_is_fast() -> bool:
    """Whether bf16 autocast runs natively here: Ampere+ GPUs, or CPUs with AVX512-BF16/AMX (else it is emulated, slow)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers; older/other builds may lack them
        return False


def precision_flags(precision: str) -> dict:
    """TrainingArguments flags for --precision auto|bf16|fp16|fp32 (auto: bf16 autocast where it is fast)."""
    if precision == "auto":
        precision = "bf16" if bf16_is_fast() else "fp32"
    if precision == "fp16" and not torch.cuda.is_available():
        raise UserError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_arguments(args, work_dir: str | Path, **overrides) -> TrainingArguments:
    """TrainingArguments from the recipe flags: evaluate every epoch (or --eval-steps), bf16 when fast, and no
    intermediate checkpoints unless --save-steps asks for them or --early-stopping-patience needs them.

    --batch-size is the global batch (examples per optimizer step), whatever the number of processes: under
    torchrun/accelerate launch each of N processes takes batch_size / N, so results match a one-process run.
    """
    processes = world_size()
    if args.batch_size % processes:
        raise UserError(f"--batch-size {args.batch_size} does not split evenly over {processes} processes; "
                        f"use a multiple of {processes}")
    if processes > 1:
        logger.info("%d processes, %d examples each per step (global batch %d)", processes, args.batch_size // processes,
                    args.batch_size)
    settings = dict(
        output_dir=str(work_dir),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size // processes,
        per_device_eval_batch_size=args.batch_size * 2 // processes,  # no gradients at eval time: twice the batch fits
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        lr_scheduler_type=args.scheduler,
        label_smoothing_factor=args.label_smoothing,
        eval_strategy="steps" if args.eval_steps else "epoch",
        eval_steps=args.eval_steps,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding, same results
        save_strategy="no",  # the final model is saved once, atomically, by save_run()
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        report_to=args.report_to,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        # Causal LMs divide their summed token loss by the token count of the whole global batch, and Trainer
        # scales it back per process. Classification models (and our weighted loss) take a plain mean, which
        # that scaling would make N times too big with N processes.
        average_tokens_across_devices=getattr(args, "block_size", None) is not None,
        torch_compile=args.compile,
        **precision_flags(args.precision),
    )
    if args.report_to == "tensorboard":  # read by Trainer's TensorBoard callback; save_run keeps the folder
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(outputs.tensorboard_dir(args.output_dir))
    if args.save_steps:  # checkpoints that --resume can continue from, kept in --output-dir until the run ends
        settings.update(output_dir=str(outputs.checkpoint_dir(args.output_dir)), save_strategy="steps",
                        save_steps=args.save_steps, save_total_limit=2)
    if args.early_stopping_patience:
        # keep a checkpoint per evaluation (two at most) so the best one can be restored at the end
        settings.update(save_strategy=settings["eval_strategy"], save_total_limit=2, load_best_model_at_end=True,
                        metric_for_best_model=args.best_metric, greater_is_better=args.best_metric not in ("loss", "perplexity"))
        if args.eval_steps and not args.save_steps:
            settings["save_steps"] = args.eval_steps
    settings.update(overrides)
    return TrainingArguments(**settings)


def world_size() -> int:
    """Processes started by torchrun / accelerate launch (they set WORLD_SIZE); 1 for a plain `python recipe.py`."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def scratch_dir() -> str:
    """Where Trainer may write while training; removed when the process exits (the result goes through save_run)."""
    path = tempfile.mkdtemp(prefix="lm-recipes-")
    atexit.register(shutil.rmtree, path, True)
    return path


class RecipeTrainer(Trainer):
    """Trainer plus the technique flags that need a hook into it (everything else is plain Trainer):

    layer_lr_decay    --layer-lr-decay: one optimizer group per depth, lr * decay**depth (common.layers)
    gradual_unfreeze  --gradual-unfreeze: the head first, then a block more every N steps or every epoch
    class_weights     --class-weights: a weighted cross-entropy (with --label-smoothing, if given)
    and, for eval datasets of long-document windows (a `document` column), metrics per document.
    """

    def __init__(self, *args, layer_lr_decay: float | None = None, gradual_unfreeze: int | str | None = None,
                 class_weights: torch.Tensor | None = None, **kwargs):
        self.layer_lr_decay = layer_lr_decay
        callbacks = [*(kwargs.pop("callbacks", None) or []), outputs.MarkCompleteCheckpoints()]
        self.unfreezing = layers.GradualUnfreezing(kwargs["model"], gradual_unfreeze) if gradual_unfreeze else None
        if self.unfreezing:
            callbacks.append(self.unfreezing)
        if class_weights is not None:
            kwargs["compute_loss_func"] = WeightedLoss(class_weights, kwargs["args"].label_smoothing_factor)
        super().__init__(*args, callbacks=callbacks, **kwargs)

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
        return PredictionOutput(long_text.mean_by_document(logits, document),
                                long_text.first_by_document(output.label_ids, document), output.metrics)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if not (isinstance(dataset, datasets.Dataset) and "document" in dataset.column_names):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        output = self.predict_in_order(dataset, ignore_keys, metric_key_prefix)
        prefix = metric_key_prefix
        metrics = {f"{prefix}_loss": output.metrics[f"{prefix}_loss"], f"{prefix}_windows": len(dataset),
                   f"{prefix}_documents": len(output.predictions)}
        metrics.update({f"{prefix}_{k}": v for k, v in self.compute_metrics(EvalPrediction(*output[:2])).items()})
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededLengthGroupedSampler(sampler, self.args.data_seed or self.args.seed, self.args.world_size)
        return sampler

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():  # stop at once: every later step would only spread the NaN/inf
            for callback in self.callback_handler.callbacks:  # end the progress bar's line before the message
                if getattr(callback, "training_bar", None) is not None:
                    callback.training_bar.close()
            raise UserError(f"the training loss became {loss.item()} at step {self.state.global_step + 1}; lower --lr "
                            f"(now {self.args.learning_rate:g}) or try --precision fp32")
        return loss

    def create_optimizer(self, model=None):
        if self.optimizer is None and (self.layer_lr_decay or self.unfreezing):
            # every parameter gets a group, frozen ones too, so those unfrozen later are updated from then on
            groups = layers.parameter_groups(model or self.model, self.args.learning_rate, self.args.weight_decay,
                                             self.layer_lr_decay or 1.0)
            optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model or self.model)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return super().create_optimizer(model)


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


class WeightedLoss:
    """Class-weighted cross-entropy: each example's loss times its class's weight, divided by the weights' sum."""

    def __init__(self, weights: torch.Tensor, label_smoothing: float = 0.0):
        self.weights, self.label_smoothing = weights, label_smoothing

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        return torch.nn.functional.cross_entropy(logits, labels, weight=self.weights.to(logits.device),
                                                 label_smoothing=self.label_smoothing)


def class_weights(spec: str | None, train_labels, label_names: list[str]) -> torch.Tensor | None:
    """--class-weights auto (n / (classes * count): rare classes weigh more) or one weight per class, in label order."""
    if not spec:
        return None
    counts = np.bincount(np.asarray(train_labels), minlength=len(label_names))
    if spec == "auto":
        if (counts == 0).any():
            raise UserError("--class-weights auto: a class has no training examples; give the weights explicitly")
        weights = counts.sum() / (len(label_names) * counts)
    else:
        try:
            weights = np.array([float(w) for w in spec.split(",")])
        except ValueError:
            raise UserError(f"--class-weights takes 'auto' or numbers separated by commas, got {spec!r}") from None
        if len(weights) != len(label_names) or (weights <= 0).any():
            raise UserError(f"--class-weights needs {len(label_names)} positive numbers, one per class in the order "
                            f"{', '.join(label_names)}; got {spec!r}")
    logger.info("class weights: %s", ", ".join(f"{n}={w:.3g}" for n, w in zip(label_names, weights)))
    return torch.tensor(weights, dtype=torch.float32)


def callbacks(args) -> list:
    """--early-stopping-patience: stop when the validation metric has not improved for N evaluations."""
    if getattr(args, "early_stopping_patience", None):
        return [EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience)]
    return []


def evaluate(trainer, dataset, split: str) -> dict:
    """Metrics on one split, keyed `{split}_*`, with perplexity derived from the loss."""
    return add_perplexity(trainer.evaluate(dataset, metric_key_prefix=split), split)
