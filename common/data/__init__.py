"""Data: tables from files, the hub or embedded packages, cleaned and split; then token datasets and batching."""

from common.data.files import read_file
from common.data.lengths import fit_max_length
from common.data.tables import classification_splits, corpus_splits, labelled_rows, load_splits
from common.data.tokens import (
    check_max_length,
    classification_datasets,
    corpus_blocks,
    lm_datasets,
    padding_collator,
)

__all__ = [
    "check_max_length",
    "classification_datasets",
    "classification_splits",
    "corpus_blocks",
    "corpus_splits",
    "fit_max_length",
    "labelled_rows",
    "lm_datasets",
    "load_splits",
    "padding_collator",
    "read_file",
]
