"""model: which checkpoint, and how it may be loaded."""

from __future__ import annotations

from dataclasses import dataclass

from common.config.fields import MAY_CHANGE, option
from common.config.groups.base import Group


@dataclass(frozen=True)
class ModelConfig(Group):
    """model"""

    model: str | None = option(
        None, "embedded:NAME (offline, ships with the project), a local folder, or a hub id such as gpt2", is_path=True
    )
    # the two that let a model run code: asked for on the command line only, never by a file someone gave you
    trust_remote_code: bool = option(
        False, "allow models that ship their own Python code (command line only)", from_file=False, on_resume=MAY_CHANGE
    )
    allow_pickle: bool = option(
        False,
        "also read pickle weights (.bin), which can run code when loaded; default: safetensors only (command line "
        "only)",
        from_file=False,
        on_resume=MAY_CHANGE,  # a permission asked on the command line, not a setting of the run
    )
    attention: str = option(
        "auto",
        "attention kernel; auto: eager on a CPU for sequences up to 128 tokens (faster "
        "there), else transformers' default (PyTorch's fused SDPA where the model has it)",
        choices=["auto", "sdpa", "eager"],
    )
