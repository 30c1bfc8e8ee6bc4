import pytest
import torch

from common import runtime
from common.errors import UserError


def test_precision_auto_uses_bf16_exactly_when_it_is_fast():
    assert runtime.precision_flags("auto")["bf16"] == runtime.bf16_is_fast()
    assert runtime.precision_flags("fp32") == {"bf16": False, "fp16": False}
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
            runtime.precision_flags("fp16")


def test_auto_weighs_the_step_bf16_only_where_its_matmuls_pay_for_the_casts(monkeypatch):
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = runtime.BF16_PAYS_FROM["cpu"]
    assert runtime.precision_flags("auto", cpu / 10) == {"bf16": False, "fp16": False}
    assert runtime.precision_flags("auto", cpu * 10)["bf16"]
    assert runtime.precision_flags("auto")["bf16"]  # the step unknown: bf16 wherever it is native
    assert runtime.precision_flags("bf16", cpu / 10)["bf16"]  # asked for: never overruled
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda: False)
    assert not runtime.precision_flags("auto", cpu * 10)["bf16"]  # emulated bf16 is slow whatever the step


def test_on_a_gpu_auto_takes_fp32_with_tf32_matmuls_for_a_small_step(monkeypatch):
    monkeypatch.setattr(runtime, "bf16_is_fast", lambda: True)
    monkeypatch.setattr(runtime, "has_tf32", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = runtime.BF16_PAYS_FROM["cuda"]
    assert gpu > runtime.BF16_PAYS_FROM["cpu"]  # a GPU's matmuls are far faster than its host's dispatch
    assert runtime.precision_flags("auto", gpu / 2) == {"bf16": False, "fp16": False, "tf32": True}
    assert runtime.precision_flags("auto", gpu * 2) == {"bf16": True, "fp16": False, "tf32": False}
    # fp32 asked for is plain fp32, even after an auto run in the same process had TF32 switched on
    assert runtime.precision_flags("fp32", gpu / 2) == {"bf16": False, "fp16": False, "tf32": False}


def test_world_size_reads_the_launchers_variable(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runtime.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert runtime.world_size() == 4


def test_running_out_of_memory_is_one_line_naming_the_flags_that_help(capsys):
    def too_big(argv):  # what torch's CPU allocator raises for --batch-size 1000000000000
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 8e12 bytes")

    with pytest.raises(SystemExit) as stop:
        runtime.run_cli(too_big, [])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: out of memory (") and "lower --batch-size" in err

    def other(argv):  # any other RuntimeError is a fault of ours: its traceback shows
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        runtime.run_cli(other, [])
