from common.train import training_arguments
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
