"""TrainingArguments from a run configuration: what Trainer is told, chosen in one place."""

from __future__ import annotations

import logging
import os

import torch
from transformers import TrainingArguments

from common.config import RunConfig
from common.config.trainer_args import trainer_overrides
from common.errors import UserError, first_line
from common.model import matmul_flops_per_token
from common.runtime import (
    check_fsdp_has_an_accelerator,
    check_one_gpu_per_process,
    data_workers,
    precision_flags,
    scratch_dir,
    world_size,
)
from common.train.checkpoints import checkpoint_dir, tensorboard_dir

logger = logging.getLogger(__name__)

DEFAULT_LOGGING_STEPS = 25


def training_arguments(config: RunConfig, work_dir: str | None = None, *, model=None, **overrides) -> TrainingArguments:
    """Evaluate every epoch (or --eval-steps), bf16 when it is faster, and no intermediate checkpoints unless
    --save-steps asks for them or --early-stopping-patience needs them. `work_dir`: where Trainer may write
    (default: a scratch folder removed at exit; the result is saved by common.run.save_run). `model`: the model
    to train, whose size per step --precision auto weighs (without it, auto takes bf16 wherever it is native).

    --batch-size is the global batch (examples per optimizer step), whatever the number of processes and
    micro-batches: under torchrun/accelerate launch each of N processes takes batch_size / N, and --grad-accum A
    cuts that into A micro-batches, so results match a one-process run of the whole batch.
    """
    training, output = config.training, config.output
    check_one_gpu_per_process()
    processes, accumulate = world_size(), training.grad_accum
    parts = [f"{processes} processes"] if processes > 1 else []
    parts += [f"{accumulate} micro-batches"] if accumulate > 1 else []
    if training.batch_size % (processes * accumulate):
        raise UserError(
            f"--batch-size {training.batch_size} does not split evenly over {' x '.join(parts)}; "
            f"use a multiple of {processes * accumulate}"
        )
    micro_batch = micro_batch_size(config)
    workers = data_workers()
    if accumulate > 1:
        logger.info("%s of %d examples per step (global batch %d)", " x ".join(parts), micro_batch, training.batch_size)
    elif processes > 1:
        logger.info(
            "%d processes, %d examples each per step (global batch %d)", processes, micro_batch, training.batch_size
        )
    settings = dict(
        output_dir=str(work_dir or scratch_dir()),
        num_train_epochs=training.epochs,
        learning_rate=training.lr,
        per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accumulate,
        per_device_eval_batch_size=micro_batch * 2,  # no gradients at eval time: twice the batch fits
        warmup_steps=training.warmup,
        weight_decay=training.weight_decay,
        lr_scheduler_type=training.scheduler,
        label_smoothing_factor=config.techniques.label_smoothing,
        eval_strategy="steps" if training.eval_steps else "epoch",
        eval_steps=training.eval_steps,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding, same results
        save_strategy="no",  # the final model is saved once, atomically, by save_run()
        logging_strategy="steps",
        logging_steps=training.logging_steps or DEFAULT_LOGGING_STEPS,  # unset: RecipeTrainer fits it to the run
        # Trainer's filter reads the loss back each step, which makes the host wait for the GPU every step;
        # RecipeTrainer checks the logged loss instead, and a NaN must stop the run, not be averaged away
        logging_nan_inf_filter=False,
        report_to=output.report_to,
        seed=training.seed,
        data_seed=training.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=workers,  # on a GPU, batches are collated while it computes
        dataloader_persistent_workers=workers > 0,
        dataloader_pin_memory=torch.cuda.is_available(),  # copies to the GPU that need no extra host copy
        # Language models divide their summed token loss by the token count of the whole global batch, and Trainer
        # scales it back per process. Classification models (and our losses) take a plain mean, which that
        # scaling would make N times too big with N processes.
        average_tokens_across_devices=config.loss_per_token,
        torch_compile=training.compile,
        activation_checkpointing=training.gradient_checkpointing,
        **precision_flags(training.precision, step_flops(config, model)),
    )
    if output.report_to == "tensorboard":  # read by Trainer's TensorBoard callback; save_run keeps the folder
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(output.output_dir))
    if output.save_steps:  # checkpoints that --resume can continue from, kept in --output-dir until the run ends
        settings.update(
            output_dir=str(checkpoint_dir(output.output_dir)),
            save_strategy="steps",
            save_steps=output.save_steps,
            save_total_limit=2,
        )
    if training.early_stopping_patience:
        # keep a checkpoint per evaluation (two at most) so the best one can be restored at the end
        settings.update(
            save_strategy=settings["eval_strategy"],
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model=training.best_metric,
            greater_is_better=training.greater_is_better,
        )
        if training.eval_steps and not output.save_steps:
            settings["save_steps"] = training.eval_steps
    settings.update(trainer_overrides(training.trainer_arg))  # --trainer-arg: the user's last word
    settings.update(overrides)
    check_fsdp_has_an_accelerator(bool(settings.get("fsdp")))
    try:
        return TrainingArguments(**settings)
    except (ValueError, TypeError, ImportError) as e:
        if not training.trainer_arg:
            raise
        raise UserError(f"--trainer-arg {' '.join(training.trainer_arg)}: {first_line(e)}") from None


def step_flops(config: RunConfig, model) -> float | None:
    """Training FLOPs of one forward and backward pass (a micro-batch in one process), at most: examples of the
    causal LM's --block-size or a classifier's --max-length. None without the model, or while --max-length is
    still `auto`."""
    length = getattr(config.data, "block_size", None) or getattr(config.data, "max_length", None)
    if model is None or not isinstance(length, int):
        return None
    return matmul_flops_per_token(model) * micro_batch_size(config) * length


def micro_batch_size(config: RunConfig) -> int:
    """Examples per forward and backward pass in one process: --batch-size split over the processes and the
    --grad-accum micro-batches (training_arguments refuses a batch that does not split evenly)."""
    return config.training.batch_size // (world_size() * config.training.grad_accum)
