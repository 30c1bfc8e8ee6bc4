"""The typed run configuration: settings by name, checks that name the flag, derived configs."""

import dataclasses

import pytest

from common.config import ClassificationTechniques, ModelConfig, Techniques
from common.errors import UserError
from common.tasks.causal_lm import CausalLMConfig
from common.tasks.classification import ClassificationConfig
from tests.conftest import classification_config


def test_every_setting_has_one_unique_name_and_help():
    for kind in (ClassificationConfig, CausalLMConfig):
        settings = kind.settings()
        groups = [f.name for f in dataclasses.fields(kind)]
        assert sum(len(dataclasses.fields(type(getattr(kind(), g)))) for g in groups) == len(settings)  # no clashes
        assert all(field.metadata["help"] for _, field, _ in settings.values())


def test_the_task_decides_which_settings_exist():
    assert {"label_column", "class_weights", "loss", "kfold", "explain"} <= set(ClassificationConfig.settings())
    assert not {"label_column", "class_weights", "loss", "kfold", "block_size"} & set(CausalLMConfig.settings()) - {
        "block_size"
    }
    assert {"block_size", "packing", "lm_loss", "prompt"} <= set(CausalLMConfig.settings())
    assert ClassificationConfig().training.best_metric == "accuracy" and CausalLMConfig().training.best_metric == "loss"
    with pytest.raises(UserError, match="'class_weights' is not a setting of a causal_lm run"):
        CausalLMConfig().derive(class_weights="auto")


def test_derive_changes_settings_by_name_parses_strings_and_leaves_the_original_alone():
    base = classification_config(lr=1e-4)
    changed = base.derive(lr="2e-4", batch_size="8", gradual_unfreeze="epoch", text_column=["a", "b"], epochs=2)
    assert (changed.training.lr, changed.training.batch_size, changed.training.epochs) == (2e-4, 8, 2.0)
    assert changed.techniques.gradual_unfreeze == "epoch" and changed.data.text_column == ["a", "b"]
    assert base.training.lr == 1e-4 and base.data.text_column == ["text"]
    assert changed.flat()["task"] == "classification" and changed.flat()["lr"] == 2e-4
    with pytest.raises(UserError, match="'learning_rate' is not a setting"):
        base.derive(learning_rate=1e-3)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(lr=float("nan")), "--lr must be a finite number"),
        (dict(epochs=float("inf")), "--epochs must be a finite number"),
        (dict(seed=-1), "--seed must be 0 or more"),
        (dict(lora_dropout=5), "--lora-dropout must be in [0, 1)"),
        (dict(label_smoothing=1.0), "--label-smoothing must be in [0, 1)"),
        (dict(layer_lr_decay=1.5), "--layer-lr-decay must be in (0, 1]"),
        (dict(text_column=["a", "b", "c"]), "--text-column takes one column, or two"),
        (dict(long_text="middle"), "--long-text must be one of truncate, head-tail, sliding-window"),
        (dict(lora_r=8, gradual_unfreeze=10), "--lora-r trains adapters, not layers"),
        (dict(merge_lora=True), "--merge-lora needs --lora-r"),
        (dict(search="grid"), "--search needs --search-space"),
        (dict(kfold=1), "--kfold needs at least 2 folds"),
        (dict(kfold=3, early_stopping_patience=2), "--kfold tests each fold"),
        (dict(resume="last", overwrite=True), "pass only one"),
        (dict(early_stopping_patience=2, save_steps=10, eval_steps=3), "needs --eval-steps that divides --save-steps"),
        (dict(validation_file="v.csv"), "need a --train-file too"),
    ],
)
def test_bad_settings_are_one_clear_error_from_python_too(settings, message):
    with pytest.raises(UserError) as error:
        classification_config(**settings)
    assert message in str(error.value)


def test_groups_check_themselves_when_built_in_python():
    config = ClassificationConfig(model=ModelConfig(model="m"), techniques=ClassificationTechniques(merge_lora=True))
    with pytest.raises(UserError, match="--merge-lora needs --lora-r"):
        config.check()
    wrong_group = ClassificationConfig(model=ModelConfig(model="m"), techniques=Techniques())
    with pytest.raises(UserError, match="techniques of a classification run must be a ClassificationTechniques"):
        wrong_group.check()
