"""The run configuration (typed, grouped dataclasses) and the command line generated from it."""

from common.config.cli import answer_help, parse
from common.config.groups import (
    CausalLMOutput,
    CausalLMTraining,
    ClassificationData,
    ClassificationOutput,
    ClassificationRuns,
    ClassificationTechniques,
    CorpusData,
    DataConfig,
    ModelConfig,
    OutputConfig,
    Runs,
    Techniques,
    TrainingConfig,
)
from common.config.schema import RunConfig

__all__ = [
    "answer_help",
    "parse",
    "CausalLMOutput",
    "CausalLMTraining",
    "ClassificationData",
    "ClassificationOutput",
    "ClassificationRuns",
    "ClassificationTechniques",
    "CorpusData",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "Runs",
    "Techniques",
    "TrainingConfig",
]
