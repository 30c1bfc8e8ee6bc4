"""`make bench`: everything measured side by side in one run, on this machine.

1. the roofline: dense matmul GFLOP/s in fp32 and bf16;
2. each recipe's training throughput (useful tokens/s, examples/s, GFLOP/s, fraction of the bf16 roofline)
   run our way and the two baseline ways (see benchmarks/throughput.py), and the ratios;
3. quality parity: one epoch on a fixed subset, then test accuracy on the recipes' full test split (causal
   LM: perplexity on held-out blocks, measured the same way for all), for our fast path, the same path in
   fp32, and the baselines (the decoder classifier: fp32 only, its baselines would take most of an hour);
4. time-to-quality: wall time of the default `make sentiment`, `make bert` and `make causal-lm` runs, with
   their test accuracy or perplexity (skip with --no-quality: it takes ~15 minutes on 2 CPU cores);
5. peak resident memory of every run;
6. where an `ours` training step's time goes (benchmarks/step_profile.py): the dense matmuls' share and
   in-step rate, which bound the fraction of the roofline any step of that shape can reach, and the other ops;
7. the host's cost of a step on a ~zero-compute model, ours (and ours forced to bf16) against a plain fp32
   Trainer (benchmarks/overhead.py): what a GPU cannot hide for small models, measurable on a CPU too.
On a GPU: the roofline is a bf16 8192^3 matmul on it and the fraction of it is the MFU; every way runs 40 steps
(causal LM 20); peak GPU memory replaces peak RSS; the step profile adds how busy the GPU was; and rows with
the GPU given more work are added (LARGE_BATCH_ROWS: larger batches, the causal LM also compiled).
Results: benchmarks/results/latest.json and latest.md (on a GPU: gpu-DEVICE.json and .md). --repeats N measures
every way N times in interleaved rounds and keeps each way's best (as timeit does), since one run can be 10-20% off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def write_results(name: str, rows: list[dict], lines: list[str]) -> None:
    """A benchmark's rows as RESULTS/NAME.json and its table as RESULTS/NAME.md, and the table printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# steps per way: the fp32 baselines are 3-10x slower, so they get fewer (still several seconds each)
STEPS = {"ours": 40, "ours-fp32": 8, "hf-examples": 8, "seeds": 6}  # ours: ~15-40 s, enough to even out batch lengths
STEPS_CAUSAL = {"ours": 6, "ours-fp32": 3, "hf-examples": 3}  # 2,048 tokens a step: ~8 s in bf16, ~13 s in fp32


def matmul_gflops(dtype: torch.dtype, n: int | None = None, seconds: float = 1.0, trials: int = 3) -> float:
    """Sustained dense matmul rate on this machine's GPU (else its CPU): the best of `trials` one-second runs.

    Short bursts under-measure it badly on a CPU (10 products gave anywhere from 210 to 383 GFLOP/s in bf16),
    which would flatter every fraction of the roofline; a peak is a best case, so take the best. On a GPU the
    product is 8192 x 8192 (2048 would not fill it); this is the peak MFU is counted against."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = n or (8192 if device == "cuda" else 2048)
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(trials):
        synchronize()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        synchronize()
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start) / 1e9)
    return best


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_child(command: list[str]) -> tuple[str, float]:
    """Run a command in a fresh process (so memory and warm-up are its own); (stdout, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
    return proc.stdout, seconds


def run_recipe(command: list[str], output: Path) -> tuple[dict, float, str]:
    """A recipe run in a fresh process into `output` (removed afterwards): (its metrics.json, wall seconds, stdout)."""
    out, seconds = run_child([*command, "--output-dir", str(output), "--overwrite"])
    metrics = json.loads((output / "metrics.json").read_text())
    shutil.rmtree(output)
    return metrics, seconds, out


# (case, training examples, ways): the decoder's fp32 padding baselines would take most of an hour, so the
# decoder classifier compares bf16 with fp32 on our data path only; the causal LM trains on 64 blocks
PARITY = [
    ("bert", 2000, ("ours", "ours-fp32", "hf-examples", "seeds")),
    ("sentiment", 800, ("ours", "ours-fp32")),
    ("causal_lm", 64, ("ours", "ours-fp32", "hf-examples")),
]


def child_result(module: str, *args: str) -> dict:
    """Run `python -m module args` in a fresh process and return the JSON of its RESULT line."""
    out, _ = run_child([sys.executable, "-m", module, *args])
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


# On a GPU a step takes milliseconds: every way gets enough steps to even out, and the rows below are added
STEPS_GPU, STEPS_GPU_CAUSAL = 40, 20
# GPU only: the GPU given enough work (batch sizes that fill an H100 better), eager and compiled; (case, way, batch)
LARGE_BATCH_ROWS = [
    ("sentiment", "ours", 256),
    ("bert", "ours", 512),
    ("causal_lm", "ours", 32),
    ("causal_lm", "ours-compile", 32),
]


def throughput(case: str, way: str, *extra: str) -> dict:
    if torch.cuda.is_available():
        steps = STEPS_GPU_CAUSAL if case == "causal_lm" else STEPS_GPU
    else:
        steps = (STEPS_CAUSAL if case == "causal_lm" else STEPS)[way]
    return child_result("benchmarks.throughput", case, way, "--steps", str(steps), *extra)


def overhead() -> dict:
    """The host-overhead proxy (benchmarks/overhead.py): ours against a plain fp32 Trainer on a ~zero-compute model."""
    return child_result("benchmarks.overhead")


def step_profile(case: str) -> dict:
    return child_result("benchmarks.step_profile", case)


QUALITY_KEYS = ("test_accuracy", "test_macro_f1", "test_perplexity_before", "test_perplexity")


def time_to_quality(recipe: str) -> dict:
    output = RESULTS / f"tmp-{recipe}"
    metrics, seconds, out = run_recipe([sys.executable, "-m", "benchmarks.peak_rss", f"recipes/{recipe}.py"], output)
    peak = float(next(line.split()[1] for line in out.splitlines() if line.startswith("PEAK_RSS_MB")))
    return {
        "recipe": recipe,
        "wall_seconds": seconds,
        **{k: metrics[k] for k in QUALITY_KEYS if k in metrics},
        "peak_rss_mb": peak,
    }


def parity_summary(parity: list[dict]) -> list[dict]:
    """One row per (case, way): the metric's mean over seeds, each seed's value, the mean training speed."""
    rows: dict[tuple[str, str], dict] = {}
    for r in parity:
        metric = "accuracy" if r.get("test_accuracy") is not None else "perplexity"
        row = rows.setdefault(
            (r["case"], r["way"]),
            {
                "case": r["case"],
                "way": r["way"],
                "precision": r["precision"],
                "metric": metric,
                "values": [],
                "speeds": [],
            },
        )
        row["values"].append(r[f"test_{metric}"])
        row["speeds"].append(r["examples_per_s"])
    for row in rows.values():
        row["mean"] = sum(row["values"]) / len(row["values"])
        row["examples_per_s"] = sum(row["speeds"]) / len(row["speeds"])
    return list(rows.values())


def markdown(report: dict) -> str:
    roof = report["roofline"]
    repeats = report["throughput"][0].get("repeats", 1) if report["throughput"] else 1
    gpu = any("peak_gpu_memory_mb" in r for r in report["throughput"])
    fraction = "MFU (of measured bf16 peak)" if gpu else "of bf16 roofline"
    memory = "peak GPU memory" if gpu else "peak RSS"
    lines = [
        f"Machine: {report['machine']}; matmul roofline fp32 {roof['fp32_gflops']:.0f} GFLOP/s, "
        f"bf16 {roof['bf16_gflops']:.0f} GFLOP/s. Throughput: best of {repeats} interleaved run(s) per way.",
        "",
        f"| recipe | way | batch | precision | useful tokens/s | examples/s | padding | GFLOP/s | {fraction} "
        f"| ours vs this | {memory} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["throughput"]:
        speedup = f"{r['speedup_of_ours']:.2f}x" if "speedup_of_ours" in r else "-"
        peak = r.get("peak_gpu_memory_mb", r["peak_rss_mb"])
        lines.append(
            f"| {r['case']} | {r['way']} | {r.get('batch_size', '-')} | {r['precision']} "
            f"| {r['useful_tokens_per_s']:.0f} | {r['examples_per_s']:.1f} | {r['padding_fraction']:.0%} "
            f"| {r['gflops_per_s']:.0f} | {r['roofline_fraction']:.1%} | {speedup} | {peak:.0f} MB |"
        )
    if report.get("overhead"):
        o = report["overhead"]
        lines += [
            "",
            f"Host overhead per step on a ~zero-compute model (1-layer BERT, width 16; `benchmarks/overhead.py`): "
            f"ours ({o['ours_precision']}, as --precision auto picks for a step this small) "
            f"{o['ours_ms_per_step']:.1f} ms, ours forced to bf16 {o['ours_bf16_ms_per_step']:.1f} ms, a plain fp32 "
            f"Trainer {o['plain_ms_per_step']:.1f} ms: ours is {o['ours_vs_plain']:.2f}x the plain step "
            f"({o['ours_bf16_vs_plain']:.2f}x in bf16).",
        ]
    if report.get("step_profile"):
        lines += [
            "",
            "| where an ours step goes | step | in dense matmuls | their rate in the step | ceiling: of bf16 roofline "
            "| largest other ops | outside any op |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in report["step_profile"]:
            others = ", ".join(f"{name.removeprefix('aten::')} {share:.0%}" for name, share in p["other_ops"][:4])
            busy = f" (GPU busy {p['gpu_busy_share']:.0%})" if "gpu_busy_share" in p else ""
            lines.append(
                f"| {p['case']} | {p['step_ms']:.0f} ms{busy} | {p['matmul_share']:.0%} | {p['matmul_gflops_in_step']:.0f} GFLOP/s "
                f"| {p['ceiling']:.0%} | {others} | {p['outside_ops_share']:.0%} |"
            )
    if report.get("parity"):
        lines += [
            "",
            "| quality parity | way | precision | train examples/s | seeds | test accuracy or perplexity (mean, each seed) |",
            "|---|---|---|---|---|---|",
        ]
        for r in parity_summary(report["parity"]):
            each = ", ".join(f"{v:.4f}" for v in r["values"])
            lines.append(
                f"| {r['case']} | {r['way']} | {r['precision']} | {r['examples_per_s']:.1f} | {len(r['values'])} "
                f"| {r['metric']} {r['mean']:.4f} ({each}) |"
            )
    if report.get("time_to_quality"):
        lines += [
            "",
            "| default run | wall time | test accuracy | macro-F1 | perplexity before -> after | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for q in report["time_to_quality"]:
            cells = [f"{q[k]:.4f}" if k in q else "-" for k in ("test_accuracy", "test_macro_f1")]
            ppl = f"{q['test_perplexity_before']:.2f} -> {q['test_perplexity']:.2f}" if "test_perplexity" in q else "-"
            lines.append(
                f"| {q['recipe']} | {q['wall_seconds']:.0f} s | {' | '.join(cells)} | {ppl} | {q['peak_rss_mb']:.0f} MB |"
            )
    return "\n".join(lines) + "\n"


def machine() -> str:
    if torch.cuda.is_available():
        cores = os.cpu_count()
        return f"{torch.cuda.get_device_name(0)}, {cores} CPU cores, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def default_out() -> str:
    if not torch.cuda.is_available():
        return "latest"
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["sentiment", "bert", "causal_lm"])
    parser.add_argument("--no-quality", action="store_true", help="skip the time-to-quality runs (~15 min)")
    parser.add_argument("--no-parity", action="store_true", help="skip the accuracy-parity runs (~10 min)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every way this many times, in interleaved rounds, and keep each way's best: "
        "run-to-run noise here is 10-20%%, and a round sees every way under the same load",
    )
    parser.add_argument(
        "--parity-seeds",
        type=int,
        default=1,
        help="repeat each classification parity run with this many seeds (42, 43, ...): one epoch on "
        "a small set moves test accuracy by about a point from seed to seed",
    )
    parser.add_argument(
        "--out",
        help="results go to benchmarks/results/OUT.json and OUT.md (default: latest, or gpu-DEVICE on a GPU)",
    )
    args = parser.parse_args(argv)
    args.out = args.out or default_out()

    roofline = {"fp32_gflops": matmul_gflops(torch.float32), "bf16_gflops": matmul_gflops(torch.bfloat16)}
    print(f"roofline: {roofline}", flush=True)
    best: dict[tuple[str, str], dict] = {}
    for round_number in range(1, args.repeats + 1):
        for case in args.cases:
            for way in ("ours", "hf-examples", "seeds"):
                if case == "causal_lm" and way == "seeds":
                    continue  # the tutorials' causal-LM recipe is concatenate-and-chunk, the same as hf-examples
                r = throughput(case, way)
                print(f"round {round_number}: {json.dumps(r)}", flush=True)
                if r["useful_tokens_per_s"] > best.get((case, way), {}).get("useful_tokens_per_s", 0):
                    best[case, way] = {**r, "repeats": args.repeats}
    results = list(best.values())
    for r in results:
        r["speedup_of_ours"] = best[r["case"], "ours"]["useful_tokens_per_s"] / r["useful_tokens_per_s"]
    if torch.cuda.is_available():  # the GPU given more work: larger batches, and compiled
        for case, way, batch in LARGE_BATCH_ROWS:
            if case in args.cases:
                r = throughput(case, way, "--batch-size", str(batch))
                print(json.dumps(r), flush=True)
                results.append(r)
    host = overhead()
    print(f"overhead: {json.dumps(host)}", flush=True)
    profiles = [step_profile(case) for case in args.cases]
    parity = []
    for case, n_train, ways in PARITY:
        if case in args.cases and not args.no_parity:
            for seed in range(42, 42 + (args.parity_seeds if case != "causal_lm" else 1)):
                for way in ways:
                    r = throughput(case, way, "--train-examples", str(n_train), "--seed", str(seed))
                    print(json.dumps(r), flush=True)
                    parity.append(r)
    quality = (
        [] if args.no_quality else [time_to_quality(r) for r in ("gpt2_sentiment", "bert_classification", "causal_lm")]
    )
    # the peak again at the end (the machine may have been busier at the start), the best of both is the roofline
    roofline = {
        k: max(v, matmul_gflops(torch.float32 if k.startswith("fp32") else torch.bfloat16)) for k, v in roofline.items()
    }
    for r in results:
        r["roofline_fraction"] = r["gflops_per_s"] / roofline["bf16_gflops"]
    for p in profiles:
        p["ceiling"] = p["matmul_gflops_in_step"] / roofline["bf16_gflops"]
    report = {
        "machine": machine(),
        "roofline": roofline,
        "throughput": results,
        "overhead": host,
        "step_profile": profiles,
        "parity": parity,
        "time_to_quality": quality,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
    print("\n" + markdown(report))


if __name__ == "__main__":
    main()
