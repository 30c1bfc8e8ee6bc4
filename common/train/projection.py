"""What a run will cost, said early: after a few measured steps, one line with the projected time of the whole
training (and of its evaluations), and, when that is long, the flag that brings it within LONG.

Why: the README's "3.5-4 min" for the sentiment run became 15-40 min on a busy laptop, and a 5-topic news csv
with default flags would have taken about an hour on 2 cores; users found out from tqdm and interrupted.
"""

from __future__ import annotations

import logging
import math
import statistics
import time

from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

MEASURED = 5  # steps timed before the projection (the first is left out: it pays for warm-up)
LONG = 20 * 60  # a projected run longer than this (seconds) is told how to fit in FIT
FIT = 10 * 60
EVAL_SHARE = 1 / 3  # an evaluation batch (forward only) against a training step (forward and backward)


def minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProjectedTime(TrainerCallback):
    """Logs `projected: ...` once, after MEASURED steps of this run."""

    def __init__(self, examples: int | None = None, epochs: float | None = None, eval_examples: int = 0):
        self.examples, self.epochs = examples, epochs  # for the cheaper settings it proposes
        self.eval_examples = eval_examples

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step, self.times, self.said = state.global_step, [], False

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.said or not state.is_world_process_zero:
            return
        self.times.append(time.perf_counter() - self.started)
        if len(self.times) <= MEASURED:
            return
        self.said = True
        with logging_redirect_tqdm():  # a line of its own, not glued to the progress bar
            logger.info(self.projection(args, state))

    def projection(self, args, state) -> str:
        per_step = statistics.median(self.times[1:])
        left = max(0, state.max_steps - state.global_step)
        training = left * per_step
        train_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
        evaluating = _evaluations(args, state) * self.eval_examples / train_batch * per_step * EVAL_SHARE
        line = (
            f"projected: training {minutes(training)} more ({left} steps at {per_step:.2f} s on this machine)"
            + (f", validation about {minutes(evaluating)}" if evaluating else "")
            + f"; about {minutes(training + evaluating)} before the final test"
        )
        total = training + evaluating
        if total > LONG and self.examples:
            share = FIT / total
            cheaper = [f"--max-train-samples {max(1, int(self.examples * share)):,}"]
            if self.epochs and self.epochs > 1 and self.epochs * share >= 1:
                cheaper = [f"--epochs {max(1, math.floor(self.epochs * share))}", *cheaper]
            line += f". That is long: for about {minutes(FIT)}, use {' or '.join(cheaper)}"
        return line


def _evaluations(args, state) -> int:
    """How many validation passes are left, as the evaluation strategy says."""
    strategy = args.eval_strategy  # IntervalStrategy is a str: it equals its value
    if strategy == "epoch":
        return max(0, math.ceil(args.num_train_epochs) - int(state.epoch or 0))
    if strategy == "steps" and args.eval_steps:
        every = args.eval_steps if args.eval_steps >= 1 else max(1, int(args.eval_steps * state.max_steps))
        return max(0, state.max_steps // every - state.global_step // every)
    return 0
