"""The groups of settings a run is made of, a module per concern, with a subclass where a task adds some.

Each field is a run setting declared with common.config.fields.option: its flag, help, choices and check.
common.config.schema puts the groups together into the run configuration of each task.
"""

from common.config.groups.base import Group
from common.config.groups.data import ClassificationData, CorpusData, DataConfig
from common.config.groups.model import ModelConfig
from common.config.groups.output import CausalLMOutput, ClassificationOutput, OutputConfig
from common.config.groups.runs import ClassificationRuns, Runs
from common.config.groups.techniques import LOSSES, ClassificationTechniques, Techniques
from common.config.groups.training import CLASSIFICATION_METRICS, SCHEDULES, CausalLMTraining, TrainingConfig

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOSSES",
    "SCHEDULES",
    "CausalLMOutput",
    "CausalLMTraining",
    "ClassificationData",
    "ClassificationOutput",
    "ClassificationRuns",
    "ClassificationTechniques",
    "CorpusData",
    "DataConfig",
    "Group",
    "ModelConfig",
    "OutputConfig",
    "Runs",
    "Techniques",
    "TrainingConfig",
]
