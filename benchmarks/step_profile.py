"""Where an `ours` training step's time goes, from torch.profiler over the same steps the throughput counts.

  python -m benchmarks.step_profile sentiment

It reports the share of the step spent in the dense matmuls the FLOP count covers (aten::mm and aten::addmm:
the Linear layers, forward and backward, and the chunked LM loss), the rate those matmuls reach inside the
step, and the largest of the other ops. The in-step matmul rate over the bf16 roofline is a ceiling on the
throughput table's "of bf16 roofline": the fraction the step would reach if every other op (weight casts,
norms, activations, dropout, attention scores, the optimizer, Python) took no time at all.
The profiler costs a little on every op: a MiniLM step took 388 ms profiled against 342 ms unprofiled (same 8
steps). That time falls mostly outside the ops, so the matmul share reads about a tenth low; the matmul rate
is barely touched (each matmul is long next to the profiler's cost).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from benchmarks import throughput
from benchmarks.throughput import synchronize

DENSE_MATMULS = ("aten::mm", "aten::addmm")  # what matmul_flops_per_token counts; attention's bmm is not counted


class ProfileTimedSteps(TrainerCallback):
    """Profiles from the start of optimizer step `first` (0-based) to the end of training."""

    def __init__(self, first: int):
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self.first, self.profiler, self.seconds = first, profile(activities=activities), 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.first:
            synchronize()
            self.profiler.start()
            self.started = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        synchronize()
        self.profiler.stop()
        self.seconds = time.perf_counter() - self.started


def breakdown(self_seconds: dict[str, float], seconds: float, dense_flops: float, top: int = 6) -> dict:
    """Shares of `seconds` by op (self time), the dense matmuls' in-step rate, and the `top` other ops."""
    matmul = sum(self_seconds.get(name, 0.0) for name in DENSE_MATMULS)
    others = sorted(
        ((name, t) for name, t in self_seconds.items() if name not in DENSE_MATMULS), key=lambda item: -item[1]
    )
    return {
        "matmul_share": matmul / seconds,
        "matmul_gflops_in_step": dense_flops / matmul / 1e9,
        "other_ops": [[name, t / seconds] for name, t in others[:top]],
        "outside_ops_share": 1 - sum(self_seconds.values()) / seconds,
    }  # Python, the data loader, waiting


def profile_steps(case: str, steps: int, warmup: int) -> dict:
    callback = ProfileTimedSteps(warmup)
    result = throughput.measure(case, "ours", steps, warmup, callbacks=[callback])
    self_seconds: dict[str, float] = {}
    for event in callback.profiler.key_averages():
        if event.key.startswith(("aten::", "autograd::")) or "Optimizer" in event.key:
            self_seconds[event.key] = event.self_cpu_time_total / 1e6
    dense_flops = result["useful_tokens_per_s"] * result["seconds"] * result["flops_per_useful_token"]
    gpu = {}
    if torch.cuda.is_available():  # the share of the wall time the GPU spent running kernels
        events = callback.profiler.key_averages()
        kernel_seconds = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / 1e6
        gpu["gpu_busy_share"] = kernel_seconds / callback.seconds
    return {
        "case": case,
        "steps": result["steps"],
        "step_ms": 1000 * callback.seconds / result["steps"],
        **breakdown(self_seconds, callback.seconds, dense_flops),
        **gpu,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=list(throughput.CASES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    result = profile_steps(args.case, args.steps, args.warmup)
    print(
        f"{args.case}: {result['step_ms']:.0f} ms a step, {result['matmul_share']:.0%} of it in dense matmuls "
        f"at {result['matmul_gflops_in_step']:.0f} GFLOP/s; the largest other ops:"
    )
    for name, share in result["other_ops"]:
        print(f"  {share:6.1%}  {name}")
    print(f"  {result['outside_ops_share']:6.1%}  outside any op (Python, data loading)")
    if "gpu_busy_share" in result:
        print(f"  the GPU ran kernels {result['gpu_busy_share']:.0%} of the time")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
