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


def test_world_size_reads_the_launchers_variable(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runtime.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert runtime.world_size() == 4
