"""The projected time of a run (common.train.projection), said once after a few measured steps."""

import logging
from types import SimpleNamespace

from common.train import projection


def run_steps(callback, seconds_per_step, steps, state, args, monkeypatch):
    clock = iter(range(10**6))
    monkeypatch.setattr(projection.time, "perf_counter", lambda: next(clock) * seconds_per_step)
    callback.on_train_begin(args, state, None)
    for _ in range(steps):
        callback.on_step_begin(args, state, None)
        state.global_step += 1
        callback.on_step_end(args, state, None)


def test_the_projection_is_said_once_after_the_measured_steps_with_validation(monkeypatch, caplog):
    args = SimpleNamespace(per_device_train_batch_size=32, gradient_accumulation_steps=1, num_train_epochs=2,
                           eval_strategy="epoch", eval_steps=None)  # fmt: skip
    state = SimpleNamespace(global_step=0, max_steps=640, epoch=0.0, is_world_process_zero=True)
    callback = projection.ProjectedTime(examples=10_240, epochs=2, eval_examples=960)
    with caplog.at_level(logging.INFO):
        run_steps(callback, 2.0, 10, state, args, monkeypatch)  # every step 2 s
    said = [r.getMessage() for r in caplog.records if r.name == "common.train.projection"]
    assert len(said) == 1  # once, after MEASURED + 1 steps
    # 634 steps left at 2 s = 21 min; validation: 2 passes x 960 / 32 x 2 s x 1/3 = 40 s
    assert said[0].startswith("projected: training 21 min more (634 steps at 2.00 s on this machine), validation")
    assert "validation about 40 s; about 22 min before the final test" in said[0]
    assert "That is long: for about 10 min, use --epochs 0" not in said[0]
    assert said[0].endswith("use --max-train-samples 4,697")  # 10,240 x 600 s / 1,308 s


def test_a_short_run_is_not_told_to_shrink_and_an_epochs_fix_comes_first(monkeypatch, caplog):
    args = SimpleNamespace(per_device_train_batch_size=8, gradient_accumulation_steps=1, num_train_epochs=3,
                           eval_strategy="no", eval_steps=None)  # fmt: skip
    short = SimpleNamespace(global_step=0, max_steps=60, epoch=0.0, is_world_process_zero=True)
    with caplog.at_level(logging.INFO):
        run_steps(projection.ProjectedTime(480, 3), 1.0, 8, short, args, monkeypatch)
    assert "That is long" not in caplog.text and "about 54 s before the final test" in caplog.text
    long = SimpleNamespace(global_step=0, max_steps=1500, epoch=0.0, is_world_process_zero=True)
    callback = projection.ProjectedTime(24_000, 3)
    run_steps(callback, 1.0, 8, long, args, monkeypatch)
    # 1,492 s left: 600 s is 0.40 of it, 1.2 of the 3 epochs
    assert callback.projection(args, long).endswith("use --epochs 1 or --max-train-samples 9,651")
