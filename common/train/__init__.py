"""Training: TrainingArguments from the run configuration, the techniques' hooks, and RecipeTrainer."""

from common.train.arguments import training_arguments
from common.train.techniques import technique_hooks
from common.train.trainer import RecipeTrainer

__all__ = ["RecipeTrainer", "technique_hooks", "training_arguments"]
