"""Guardrails for a newcomer's own small data: the step count is said before training, the curve has points."""

import dataclasses
import json
import re

from common.config import TrainingConfig
from common.run import from_argv
from common.train import RecipeTrainer
from common.train.trainer import fit_logging_steps
from recipes import bert_classification


def planned(examples: int, logging_steps: int = 25, fit: bool = True, training=None, **args) -> RecipeTrainer:
    """The planning RecipeTrainer does when made (an unset --logging-steps fitted) and when training starts."""
    trainer = RecipeTrainer.__new__(RecipeTrainer)  # only the planning runs: no model needed
    trainer.train_dataset = list(range(examples))
    trainer.training = training or TrainingConfig()
    settings = dict(max_steps=-1, num_train_epochs=1, per_device_train_batch_size=8, gradient_accumulation_steps=2,
                    world_size=2, logging_steps=logging_steps)  # fmt: skip
    trainer.args = Arguments(**{**settings, **args})
    if fit:
        trainer.args = fit_logging_steps(trainer.args, trainer.train_dataset)
    trainer._warn_of_too_few_steps()
    return trainer


@dataclasses.dataclass
class Arguments:  # the TrainingArguments fields the planning reads (world_size is a property there)
    max_steps: int
    num_train_epochs: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    logging_steps: int


def test_steps_are_counted_over_processes_and_micro_batches_and_too_few_are_said_with_the_fix(caplog):
    trainer = planned(1000)  # global batch 8 x 2 micro-batches x 2 processes = 32: 32 steps
    assert "only 32 optimizer steps (1000 training examples, batch 32, 1 epoch)" in caplog.text
    assert "for 50 or more use --batch-size 16 or --epochs 2" in caplog.text
    assert trainer.args.logging_steps == 3  # unset: fitted so that the curve has 10 points or more


def test_a_language_model_is_told_more_text_first_and_the_causal_lm_default_run_is_enough(caplog):
    from recipes import causal_lm

    lm = causal_lm.DEFAULTS.training
    planned(causal_lm.DEFAULTS.data.max_train_samples, training=lm, per_device_train_batch_size=lm.batch_size,
            gradient_accumulation_steps=1, world_size=1)  # fmt: skip
    assert "optimizer steps" not in caplog.text  # 20 steps: enough for a pretrained LM going on with text
    planned(64, training=lm, per_device_train_batch_size=8, gradient_accumulation_steps=1, world_size=1)
    assert "only 8 optimizer steps (64 training examples, batch 8, 1 epoch)" in caplog.text
    assert (
        "for 20 or more use --max-train-samples 160 (more text, where the data has it) or --batch-size" in caplog.text
    )


def test_enough_steps_say_nothing_and_an_explicit_logging_interval_is_kept(caplog):
    assert planned(10_000).args.logging_steps == 25 and "optimizer steps" not in caplog.text
    assert planned(1000, logging_steps=7, fit=False).args.logging_steps == 7


def test_a_tiny_run_warns_once_and_still_logs_a_curve(tiny_bert, reviews_csv, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        from_argv(
            bert_classification.main,
            bert_classification.DEFAULTS,
            ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--batch-size", "16", "--epochs", "1",
             "--precision", "fp32", "--output-dir", str(out)],
        )  # fmt: skip
    said = [r for r in caplog.records if "optimizer steps" in r.getMessage()]
    warnings = [r.getMessage() for r in said if r.name == "common.train.trainer"]
    assert len(warnings) == 1  # before training; and once more among the caveats after the test split:
    assert [r.name for r in said] == ["common.train.trainer", "common.evaluate.classification"]
    assert re.search(
        r"^only \d+ optimizer steps .*; for 50 or more use (--batch-size \d+ or )?--epochs \d+$", warnings[0]
    )
    logged = [e for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]
    assert logged  # every 25 steps, a run this short had logged no training loss at all
