import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from common import runtime
from common.config import ModelConfig
from common.errors import UserError
from common.model import adapt, load_config
from common.model import load as modeling
from common.train import training_arguments
from common.train.arguments import step_flops
from recipes import bert_classification, causal_lm, gpt2_sentiment
from tests.conftest import classification_config

SMALL = dict(epochs=1.0, lr=1e-4, batch_size=4, max_length=16, seed=7, logging_steps=5, precision="fp32")


def test_training_arguments_follow_the_config(tmp_path):
    targs = training_arguments(classification_config(**SMALL), tmp_path)
    assert (targs.learning_rate, targs.per_device_train_batch_size, targs.per_device_eval_batch_size) == (1e-4, 4, 8)
    assert targs.seed == 7 and targs.data_seed == 7 and targs.logging_steps == 5
    assert targs.eval_strategy == "epoch" and targs.save_strategy == "no"
    assert targs.train_sampling_strategy == "group_by_length"
    assert not targs.bf16 and not targs.fp16
    assert not targs.average_tokens_across_devices  # classifiers take a plain mean (see arguments.py)


def test_early_stopping_keeps_checkpoints_and_restores_the_best(tmp_path):
    config = classification_config(**SMALL, early_stopping_patience=2, eval_steps=10)
    targs = training_arguments(config, tmp_path)
    assert targs.load_best_model_at_end and targs.metric_for_best_model == "accuracy" and targs.greater_is_better
    assert (targs.eval_strategy, targs.save_strategy, targs.eval_steps) == ("steps", "steps", 10)
    loss_watched = training_arguments(config.derive(best_metric="loss"), tmp_path)
    assert loss_watched.metric_for_best_model == "loss" and not loss_watched.greater_is_better


def test_no_per_step_loss_read_back_and_no_data_workers_on_a_cpu(tmp_path):
    targs = training_arguments(classification_config(**SMALL), tmp_path)
    assert not targs.logging_nan_inf_filter  # RecipeTrainer checks the logged loss instead
    if not torch.cuda.is_available():
        assert targs.dataloader_num_workers == 0 and not targs.dataloader_pin_memory


def test_more_processes_than_gpus_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"2 processes on this machine but 1 GPU\(s\).*--nproc_per_node 1"):
        training_arguments(classification_config(**SMALL), tmp_path)


def test_fsdp_without_a_gpu_is_refused_in_one_line_however_it_is_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="FSDP needs GPUs: on a CPU accelerate trains without it"):
        training_arguments(classification_config(**SMALL, trainer_arg=["fsdp=full_shard"]), tmp_path)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # accelerate launch --config_file configs/accelerate/fsdp.yaml
    with pytest.raises(UserError, match="use configs/accelerate/ddp.yaml"):
        training_arguments(classification_config(**SMALL), tmp_path)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    assert not training_arguments(classification_config(**SMALL), tmp_path).fsdp  # DDP and one process: as before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_batches_are_prepared_by_workers_into_pinned_memory(tmp_path):
    targs = training_arguments(classification_config(**{**SMALL, "precision": "auto"}), tmp_path)
    assert targs.dataloader_num_workers > 0 and targs.dataloader_pin_memory and targs.dataloader_persistent_workers
    assert targs.bf16 == torch.cuda.is_bf16_supported(including_emulation=False)


def test_precision_auto_trains_a_tiny_model_in_fp32_even_where_bf16_is_native(monkeypatch, tmp_path, tiny_bert, caplog):
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda: True)
    config = classification_config(**{**SMALL, "precision": "auto"})
    tokenizer = modeling.load_tokenizer(str(tiny_bert))
    model = modeling.load_classifier(ModelConfig(model=str(tiny_bert)), ["a", "b"], tokenizer)
    assert step_flops(config, model) < runtime.BF16_PAYS_FROM["cpu"]
    with caplog.at_level(logging.INFO, logger="common.runtime"):
        assert not training_arguments(config, tmp_path, model=model).bf16
    assert "precision auto: fp32 (a micro-batch is" in caplog.text and "--precision bf16 to use it" in caplog.text
    assert training_arguments(config, tmp_path).bf16  # the model unknown: bf16 wherever it is native


def default_model(recipe):
    """The recipe's default model as it trains (its freezing applied), on the meta device: shapes, no weights."""
    config = recipe.DEFAULTS
    with torch.device("meta"):
        if config.task == "causal_lm":
            model = AutoModelForCausalLM.from_config(load_config(config.model.model))
        else:
            config = config.derive(max_length=64)  # what --max-length auto takes for the embedded snippets
            model = AutoModelForSequenceClassification.from_config(load_config(config.model.model, num_labels=2))
    return config, adapt(model, config.techniques)


@pytest.mark.parametrize(
    "recipe, on_a_gpu",
    [(bert_classification, "fp32"), (gpt2_sentiment, "fp32"), (causal_lm, "bf16")],
    ids=["bert", "sentiment", "causal_lm"],
)
def test_precision_auto_at_the_recipes_defaults(recipe, on_a_gpu):
    """On a CPU with bf16 every default run keeps bf16 (2.5x fp32's speed there; the recorded results are bf16's).
    On a GPU the classifiers' default steps are bound by the host, where fp32 ran faster (H100); the causal LM's
    has the matmul work for bf16."""
    config, model = default_model(recipe)
    flops = step_flops(config, model)
    assert flops >= runtime.BF16_PAYS_FROM["cpu"]
    assert ("bf16" if flops >= runtime.BF16_PAYS_FROM["cuda"] else "fp32") == on_a_gpu


def _another_value(field, value):
    """A valid value of the setting other than `value`."""
    choices = field.metadata.get("choices")
    if choices:
        return next(c for c in choices if c != value and c not in ("auto", "fp16"))  # fp16 needs CUDA
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value / 2 if value else 0.1
    return (value or 3) + 1 if field.name != "save_steps" else 20  # save_steps: a multiple of eval_steps below


def test_each_trainer_field_a_setting_declares_is_one_training_arguments_sets_from_it(tmp_path):
    """option(trainer_fields=...) is what --trainer-arg refuses and what the docs name; this holds it to the code:
    changing the setting must change each TrainingArguments field it declares (fp16 needs CUDA: checked there)."""
    import dataclasses

    from transformers import TrainingArguments

    # early stopping on, so that --best-metric reaches metric_for_best_model
    base = classification_config(**SMALL, early_stopping_patience=2, eval_steps=5)
    before = training_arguments(base, tmp_path)
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    declared = {n: f for n, (_, f, _) in base.settings().items() if f.metadata["trainer_fields"]}
    assert {"lr", "batch_size", "seed", "precision", "label_smoothing", "save_steps"} <= set(declared)
    for name, field in declared.items():
        assert set(field.metadata["trainer_fields"]) <= fields, name
        value = _another_value(field, base.flat()[name])
        after = training_arguments(base.derive(**{name: value}), tmp_path)
        unchanged = [
            t for t in field.metadata["trainer_fields"] if getattr(after, t) == getattr(before, t) and t != "fp16"
        ]
        assert not unchanged, f"--{name} {value} left {unchanged} as they were"


def test_trainer_arg_refuses_every_field_a_setting_sets_naming_its_flag():
    from common.config.trainer_args import check_trainer_arg, set_by_our_flags

    ours = set_by_our_flags()
    assert ours["learning_rate"] == "--lr" and ours["hub_model_id"] == "--push-to-hub USER/NAME"
    assert ours["bf16"] == ours["fp16"] == "--precision" and ours["resume_from_checkpoint"].startswith("--resume")
    for key, usage in ours.items():
        assert check_trainer_arg(f"{key}=1") == f"{key}: use {usage}, which sets it for the recipes"
