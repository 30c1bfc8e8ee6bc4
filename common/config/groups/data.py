"""data: where the examples come from and how they become tokens (a subclass per task)."""

from __future__ import annotations

from dataclasses import dataclass

from common.config.fields import (
    AUTO_MATCHES_ANY,
    non_negative,
    one_or_two,
    option,
    positive,
    require,
    tokens,
    tokens_or_auto,
)
from common.config.groups.base import Group


@dataclass(frozen=True)
class DataConfig(Group):
    """data (files win over --dataset; missing validation/test splits are carved 80/10/10 from train)"""

    dataset: str | None = option(None, "embedded:NAME or a hub dataset name such as imdb (needs the hub)")
    dataset_config: str | None = option(None, "hub dataset configuration name, if it has several")
    train_file: str | None = option(
        None, "training data: .csv .json .jsonl .parquet, or .txt / a folder of .txt", is_path=True
    )
    validation_file: str | None = option(None, "validation data in the same format", is_path=True)
    test_file: str | None = option(None, "test data in the same format", is_path=True)
    max_train_samples: int | None = option(None, "train on at most this many examples (seeded sample)", check=positive)
    max_eval_samples: int | None = option(None, "validate each epoch on at most this many examples", check=positive)
    max_test_samples: int | None = option(
        None, "test on at most this many examples (none: the whole test split)", check=positive
    )

    def __post_init__(self):
        if self.train_file and (self.dataset or self.dataset_config):  # files win: record the data actually used
            object.__setattr__(self, "dataset", None)  # (run_config.json and report.md named the default dataset)
            object.__setattr__(self, "dataset_config", None)

    @property
    def source(self) -> str | None:
        """The data the run trains on, as reports name it: the training file, else the dataset."""
        return self.train_file or self.dataset

    def check(self) -> None:
        require(
            bool(self.train_file) or not (self.validation_file or self.test_file),
            "--validation-file/--test-file need a --train-file too; add --train-file",
        )


@dataclass(frozen=True)
class ClassificationData(DataConfig):
    text_column: list[str] = option(
        ["text"],
        "text column, or two columns for sentence pairs (paraphrase, entailment)",
        nargs="+",
        metavar="COLUMN",
        check=one_or_two,
    )
    label_column: str = option("label", "label column: strings or integers")
    max_length: int | str = option(
        "auto",
        "tokens per example, longer ones are cut (see --long-text); auto: the length that keeps 199 in 200 "
        "training texts whole, rounded up to 8, at most what the model reads and 512 (256 on a CPU, where 512 did "
        "not pay for its time) (logged)",
        check=tokens_or_auto,
        metavar="N|auto",
        on_resume=AUTO_MATCHES_ANY,  # recorded as the length auto took
    )
    long_text: str = option(
        "truncate",
        "texts beyond --max-length: keep the start, keep head and tail, or classify "
        "overlapping windows and average them per document",
        choices=["truncate", "head-tail", "sliding-window"],
    )
    stride: int = option(32, "tokens shared by neighbouring sliding windows", check=positive)
    augment: int = option(
        0,
        "add N label-preserving variants of each training example (random word deletion/swap; at most 32)",
        check=lambda n: (
            non_negative(n) or (f"must be at most 32 (each adds the training set again), got {n}" if n > 32 else None)
        ),
        metavar="N",
    )

    def check(self) -> None:
        super().check()
        require(
            self.label_column not in self.text_column,
            f"--label-column '{self.label_column}' is also a --text-column: the model would read the answer; "
            f"choose the column that holds the text",
        )


@dataclass(frozen=True)
class CorpusData(DataConfig):
    text_column: str = option("text", "text column, for table files and hub datasets")
    block_size: int | None = option(None, "tokens per training block (the corpus is cut into blocks)", check=tokens)
    packing: str = option(
        "documents",
        "documents: positions restart at each document and documents in a block cannot "
        "attend to each other; concat: plain concatenate-and-chunk (the standard "
        "examples' way)",
        choices=["documents", "concat"],
    )
