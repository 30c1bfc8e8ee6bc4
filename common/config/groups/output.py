"""output: where the run is saved, checkpoints, resume, the hub."""

from __future__ import annotations

from dataclasses import dataclass

from common.config.fields import (
    MAY_CHANGE,
    non_negative,
    option,
    positive,
    repo_id,
    require,
)
from common.config.groups.base import Group


@dataclass(frozen=True)
class OutputConfig(Group):
    """output"""

    # each output setting says where the run goes or what is reported after training: --resume may change it
    output_dir: str | None = option(
        None,
        "where the model, tokenizer and metrics.json are saved",
        searchable=False,
        on_resume=MAY_CHANGE,
        replaces=("output_dir",),  # Trainer writes to a scratch folder; save_run saves the result here, atomically
    )
    overwrite: bool = option(
        False,
        "replace the output folder if it already holds a run",
        from_file=False,
        searchable=False,
        on_resume=MAY_CHANGE,
        replaces=("overwrite_output_dir",),  # a field of transformers 4 that users bring along
    )
    save_steps: int | None = option(
        None,
        "write a checkpoint every N steps into OUTPUT_DIR/checkpoints (the last two "
        "are kept), so --resume can continue after a crash",
        check=positive,
        metavar="N",
        on_resume=MAY_CHANGE,
        trainer_fields=("save_steps",),
    )
    resume: str | None = option(
        None,
        "continue from the last complete checkpoint in --output-dir (or the CHECKPOINT "
        "folder given): same data order, learning-rate schedule, optimizer and random "
        "state",
        nargs="?",
        const="last",
        metavar="CHECKPOINT",
        from_file=False,
        searchable=False,
        on_resume=MAY_CHANGE,
        replaces=("resume_from_checkpoint",),  # passed to trainer.train() after the checkpoint is checked
    )
    push_to_hub: str | None = option(
        None,
        "after saving, upload the output folder to this hub repository (created if missing; needs `hf auth login` "
        "or HF_TOKEN); the model card's load snippet names it",
        metavar="USER/NAME",
        check=repo_id,
        from_file=False,
        searchable=False,
        on_resume=MAY_CHANGE,
        # checked (login, name) before training; the finished run folder is uploaded, not Trainer's checkpoints
        replaces=(
            "push_to_hub",
            "hub_model_id",
            "hub_strategy",
            "hub_token",
            "hub_private_repo",
            "hub_always_push",
            "hub_revision",
        ),
    )
    report_to: str = option(
        "none",
        "tensorboard: also log losses and metrics to OUTPUT_DIR/tensorboard (tensorboard --logdir OUTPUT_DIR)",
        choices=["none", "tensorboard"],
        on_resume=MAY_CHANGE,  # (--trainer-arg report_to=wandb stays open: the user's last word)
    )

    def check(self) -> None:
        require(
            not (self.resume and self.overwrite),
            "--resume continues the run in --output-dir and --overwrite replaces it: pass only one",
        )


@dataclass(frozen=True)
class ClassificationOutput(OutputConfig):
    explain: int = option(
        0,
        "write explain.html: token attributions (gradient x input) for the first N test examples",
        check=non_negative,
        metavar="N",
        on_resume=MAY_CHANGE,
    )
    baseline: str = option(
        "tfidf",
        "score the majority class and TF-IDF + logistic regression on the same split, beside the model "
        "(seconds on a CPU), and say when the model does not beat them; none: skip",
        choices=["tfidf", "none"],
        on_resume=MAY_CHANGE,
    )


@dataclass(frozen=True)
class CausalLMOutput(OutputConfig):
    prompt: str | None = option(None, "after training, print a sample generated from this prompt", on_resume=MAY_CHANGE)
    max_new_tokens: int = option(60, "length of the generated sample", check=positive, on_resume=MAY_CHANGE)
