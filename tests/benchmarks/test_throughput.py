import pytest


def fake_step_profile(case):
    return {
        "case": case,
        "steps": 8,
        "step_ms": 300.0,
        "matmul_share": 0.5,
        "matmul_gflops_in_step": 9.0,
        "other_ops": [["aten::bernoulli_", 0.14], ["aten::copy_", 0.035]],
        "outside_ops_share": 0.1,
    }


def fake_overhead():
    return {
        "ours_ms_per_step": 5.5,
        "ours_precision": "fp32",
        "ours_bf16_ms_per_step": 7.7,
        "plain_ms_per_step": 5.0,
        "ours_vs_plain": 1.1,
        "ours_bf16_vs_plain": 1.54,
    }


def test_breakdown_shares_and_the_in_step_matmul_rate():
    """Shares are self time over the profiled wall time; the rate is the counted FLOPs over mm + addmm time."""
    from benchmarks.step_profile import breakdown

    ops = {"aten::mm": 0.3, "aten::addmm": 0.1, "aten::bernoulli_": 0.2, "aten::copy_": 0.05, "aten::bmm": 0.15}
    result = breakdown(ops, seconds=1.0, dense_flops=8e9, top=2)
    assert result["matmul_share"] == pytest.approx(0.4)
    assert result["matmul_gflops_in_step"] == pytest.approx(20.0)  # 8 GFLOP in 0.4 s
    assert result["other_ops"] == [["aten::bernoulli_", pytest.approx(0.2)], ["aten::bmm", pytest.approx(0.15)]]
    assert result["outside_ops_share"] == pytest.approx(0.2)


def test_step_profile_covers_the_timed_steps_of_a_tiny_model(monkeypatch, tiny_gpt2):
    """The profiler runs over exactly the steps the throughput counts; the matmuls are a real share of them."""
    from benchmarks import step_profile, throughput

    monkeypatch.setitem(
        throughput.CASES,
        "sentiment",
        {
            **throughput.CASES["sentiment"],
            "config": throughput.CASES["sentiment"]["config"].derive(
                model=str(tiny_gpt2), freeze_layers=0, freeze_embeddings=False
            ),
        },
    )
    result = step_profile.profile_steps("sentiment", steps=3, warmup=1)
    assert result["steps"] == 3 and result["step_ms"] > 0
    assert 0 < result["matmul_share"] < 1 and result["matmul_gflops_in_step"] > 0
    assert all(name.startswith(("aten::", "autograd::", "Optimizer")) for name, _ in result["other_ops"])
    assert (
        result["matmul_share"] + sum(share for _, share in result["other_ops"]) + result["outside_ops_share"]
        <= 1 + 1e-9
    )


def test_bench_keeps_each_ways_best_of_interleaved_rounds(monkeypatch, tmp_path):
    """--repeats: every way is measured once per round, in the same order, and its fastest run is reported."""
    from benchmarks import bench

    speeds = iter([100, 40, 20, 130, 30, 26])  # round 1: ours, hf-examples, seeds; round 2: the same
    calls = []

    def fake_throughput(case, way, *extra):
        calls.append(way)
        return {
            "case": case,
            "way": way,
            "useful_tokens_per_s": next(speeds),
            "gflops_per_s": 1.0,
            "precision": "bf16",
            "examples_per_s": 1.0,
            "padding_fraction": 0.0,
            "peak_rss_mb": 1.0,
        }

    monkeypatch.setattr(bench, "throughput", fake_throughput)
    monkeypatch.setattr(bench, "matmul_gflops", lambda dtype, **kw: 10.0)
    monkeypatch.setattr(bench, "step_profile", fake_step_profile)
    monkeypatch.setattr(bench, "overhead", fake_overhead)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    bench.main(["--cases", "bert", "--repeats", "2", "--no-quality", "--no-parity", "--out", "t"])
    assert calls == ["ours", "hf-examples", "seeds"] * 2
    report = __import__("json").loads((tmp_path / "t.json").read_text())
    best = {r["way"]: r for r in report["throughput"]}
    assert {w: r["useful_tokens_per_s"] for w, r in best.items()} == {"ours": 130, "hf-examples": 40, "seeds": 26}
    assert best["seeds"]["speedup_of_ours"] == 5.0 and best["hf-examples"]["speedup_of_ours"] == 3.25
    assert "best of 2 interleaved run(s)" in (tmp_path / "t.md").read_text()
    # where the step goes: the ceiling is the in-step matmul rate over the bf16 roofline
    assert report["step_profile"][0]["ceiling"] == 0.9
    assert (
        "| bert | 300 ms | 50% | 9 GFLOP/s | 90% | bernoulli_ 14%, copy_ 4% | 10% |" in (tmp_path / "t.md").read_text()
    )


def test_parity_runs_every_seed_and_reports_the_mean_per_way(monkeypatch, tmp_path):
    """--parity-seeds: each classification way runs once per seed; the table shows the mean and every seed's value."""
    from benchmarks import bench

    accuracy = {("ours", "42"): 0.70, ("ours", "43"): 0.80, ("hf-examples", "42"): 0.76, ("hf-examples", "43"): 0.72}
    runs = []

    def fake_throughput(case, way, *extra):
        seed = extra[extra.index("--seed") + 1] if "--seed" in extra else None  # throughput runs take no seed
        runs.append((way, seed))
        quality = {"test_accuracy": accuracy.get((way, seed), 0.5)} if "--train-examples" in extra else {}
        return {
            "case": case,
            "way": way,
            "useful_tokens_per_s": 10.0,
            "gflops_per_s": 1.0,
            "precision": "bf16",
            "examples_per_s": 2.0,
            "padding_fraction": 0.0,
            "peak_rss_mb": 1.0,
            **quality,
        }

    monkeypatch.setattr(bench, "throughput", fake_throughput)
    monkeypatch.setattr(bench, "matmul_gflops", lambda dtype, **kw: 10.0)
    monkeypatch.setattr(bench, "step_profile", fake_step_profile)
    monkeypatch.setattr(bench, "overhead", fake_overhead)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    bench.main(["--cases", "bert", "--parity-seeds", "2", "--no-quality", "--out", "t"])
    parity_runs = [r for r in runs if r[1] is not None]
    assert parity_runs == [(w, s) for s in ("42", "43") for w in ("ours", "ours-fp32", "hf-examples", "seeds")]
    rows = {
        r["way"]: r for r in bench.parity_summary(__import__("json").loads((tmp_path / "t.json").read_text())["parity"])
    }
    assert rows["ours"]["values"] == [0.70, 0.80] and abs(rows["ours"]["mean"] - 0.75) < 1e-12
    assert abs(rows["hf-examples"]["mean"] - 0.74) < 1e-12
    assert "| bert | ours | bf16 | 2.0 | 2 | accuracy 0.7500 (0.7000, 0.8000) |" in (tmp_path / "t.md").read_text()


def test_the_gpu_table_shows_mfu_gpu_memory_and_the_large_batch_rows():
    """On a GPU the fraction of the measured bf16 peak is the MFU, memory is the GPU's, and rows without a
    baseline to compare (the large-batch ones) show no ratio."""
    from benchmarks import bench

    row = dict(case="causal_lm", precision="bf16", useful_tokens_per_s=64000.0, examples_per_s=250.0,
               padding_fraction=0.0, gflops_per_s=86000.0, roofline_fraction=0.112, peak_rss_mb=9000.0,
               peak_gpu_memory_mb=20480.0)  # fmt: skip
    report = {
        "machine": "NVIDIA H100 80GB HBM3, 16 CPU cores",
        "roofline": {"fp32_gflops": 50000.0, "bf16_gflops": 772000.0},
        "throughput": [
            {**row, "way": "ours", "batch_size": 8, "speedup_of_ours": 1.0},
            {**row, "way": "ours-compile", "batch_size": 32},
        ],
        "overhead": fake_overhead(),
    }
    text = bench.markdown(report)
    assert "| MFU (of measured bf16 peak) | ours vs this | peak GPU memory |" in text
    assert "| causal_lm | ours | 8 | bf16 | 64000 | 250.0 | 0% | 86000 | 11.2% | 1.00x | 20480 MB |" in text
    assert "| causal_lm | ours-compile | 32 | bf16 | 64000 | 250.0 | 0% | 86000 | 11.2% | - | 20480 MB |" in text
    assert (
        "ours (fp32, as --precision auto picks for a step this small) 5.5 ms, ours forced to bf16 7.7 ms, a plain "
        "fp32 Trainer 5.0 ms: ours is 1.10x the plain step (1.54x in bf16)"
    ) in text


def test_host_overhead_proxy_times_every_way_on_a_tiny_model(tmp_path):
    from benchmarks import overhead

    folder = overhead.tiny_bert(str(tmp_path))
    for way in overhead.WAYS:
        milliseconds, precision = overhead.measure(way, folder, steps=3, warmup=1)
        assert 0 < milliseconds < 5000
        if way == "ours-bf16":
            assert precision == "bf16"
        elif way == "ours":  # a step this small is not worth bf16's casts: auto weighs the step's FLOPs
            assert precision == "fp32"
