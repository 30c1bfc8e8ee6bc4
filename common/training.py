"""Training helpers around Trainer: arguments with sane defaults, mixed precision, evaluation, saving.

The training loop, devices and distribution all stay with Trainer/accelerate; this module only chooses
settings and writes results.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import TrainingArguments

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
    """TrainingArguments from the recipe flags: evaluate every epoch, no intermediate checkpoints, bf16 when fast."""
    settings = dict(
        output_dir=str(work_dir),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size * 2,  # no gradients at eval time: twice the batch fits
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding, same results
        save_strategy="no",  # the final model is saved once, atomically, by save_run()
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        torch_compile=args.compile,
        **precision_flags(args.precision),
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def scratch_dir() -> str:
    """Where Trainer may write while training; removed when the process exits (the result goes through save_run)."""
    path = tempfile.mkdtemp(prefix="lm-recipes-")
    atexit.register(shutil.rmtree, path, True)
    return path


def evaluate(trainer, dataset, split: str) -> dict:
    """Metrics on one split, keyed `{split}_*`, with perplexity derived from the loss."""
    return add_perplexity(trainer.evaluate(dataset, metric_key_prefix=split), split)


# ---------------------------------------------------------------- output folder


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace another run's results unless asked, and fail now (not after training) if unwritable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir '{path}' is a file, not a folder; choose another --output-dir")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(f"--output-dir '{path}' already holds files; pass --overwrite to replace them, or choose another --output-dir")
    parent = path.resolve().parent
    existing = next(p for p in [parent, *parent.parents] if p.exists())
    if not os.access(existing, os.W_OK):
        raise UserError(f"cannot write to '{existing}' for --output-dir '{path}'; choose a folder you can write to")
    return path


def save_run(output_dir: str | Path, model, tokenizer, metrics: dict, config: dict) -> Path:
    """Write model (safetensors), tokenizer, metrics.json and config.json into a staging folder, then move it into place.

    A crash while saving leaves the staging folder behind (named .<name>.partial-*), never a half-written output.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "run_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        os.chmod(staging, 0o755)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("saved model, tokenizer and metrics to %s", output_dir)
    return output_dir
