"""Datasets as pandas tables: load (files, hub, embedded), clean, split, encode labels.

Every recipe ends up with a dict ``{"train": frame, "validation": frame, "test": frame}``; tokenizing
is the job of :mod:`common.data.tokens`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from common import assets
from common.config import ClassificationData, CorpusData
from common.data import augment
from common.data.files import CORPUS_SUFFIXES, TABLE_SUFFIXES, read_file
from common.errors import UserError, first_line

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------- loading


def load_splits(
    train_file=None, validation_file=None, test_file=None, dataset=None, dataset_config=None, folders=True
) -> dict:
    """The splits a user gave, as tables: files win over --dataset; missing splits are absent from the dict.
    `folders`: whether a folder of .txt files may stand for a file (a corpus, not a labelled table)."""
    if train_file:
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        return {split: read_file(f, f"--{split}-file", folders) for split, f in files.items() if f}
    if validation_file or test_file:
        raise UserError("--validation-file/--test-file need a --train-file too; add --train-file")
    if not dataset:
        raise UserError("no data given; pass --train-file FILE or --dataset NAME")
    if assets.is_embedded(dataset):
        return {"train": assets.load_dataset_frame(dataset)}
    return _load_hub_dataset(dataset, dataset_config)


def _load_hub_dataset(name: str, config: str | None) -> dict:
    import datasets

    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as e:  # offline, unknown name, bad config: all end the same way for the user
        raise UserError(
            f"could not load dataset '{name}' ({first_line(e)}); use a local file with --train-file, "
            f"or an embedded dataset: {', '.join(assets.PREFIX + k for k in assets.EMBEDDED_DATASETS)}"
        ) from None
    aliases = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test"}
    splits = {}
    for split_name, part in loaded.items():
        if split_name in aliases:
            frame = part.to_pandas()
            for column, feature in part.features.items():
                if isinstance(feature, datasets.ClassLabel):  # keep label names, not bare integers
                    frame[column] = [feature.int2str(int(v)) if v >= 0 else None for v in frame[column]]
            splits[aliases[split_name]] = frame
    if "train" not in splits:
        raise UserError(f"dataset '{name}' has no train split (it has: {', '.join(loaded)}); use --train-file")
    return splits


# ---------------------------------------------------------------- cleaning and splitting


def _looks_like_data(columns) -> bool:
    """Column names that are a row of data (a file without a header row): a name of 5 words or more."""
    return any(isinstance(c, str) and len(c.split()) >= 5 for c in columns)


def require_columns(splits: dict, columns: list[str], flag: str) -> None:
    """Each column in every split, holding one value per row (not lists or objects, as JSON and parquet allow)."""
    for split, frame in splits.items():
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            available = ", ".join(map(str, frame.columns))
            if len(available) > 300:
                available = available[:300] + "..."
            if _looks_like_data(frame.columns):
                raise UserError(
                    f"column '{missing[0]}' is not in the {split} data, whose first row looks like data, not column "
                    f"names ({available}): the file has no header row; add one as its first line (such as "
                    f"label<TAB>text, or label,text), then pass --text-column/--label-column"
                )
            raise UserError(
                f"column '{missing[0]}' is not in the {split} data (columns: {available}); choose one with {flag}"
            )
        for column in dict.fromkeys(columns):
            nested = frame[column].map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
            if nested.any():
                row = int(np.flatnonzero(nested.to_numpy())[0])
                kind = type(frame[column].iloc[row]).__name__
                raise UserError(
                    f"column '{column}' of the {split} data holds a {kind} in row {row + 1}, not one value; each row "
                    f"needs one text and one label (join or explode the lists first)"
                )


def clean(splits: dict, text_columns: list[str], label_column: str | None = None, rows: str = "rows") -> dict:
    """Strip text, drop empty rows and exact duplicates, and drop training rows that also appear in eval splits.
    `rows`: what a row is called in the log (a corpus's rows are documents)."""
    cleaned = {}
    for split, frame in splits.items():
        frame = frame.copy()
        before = len(frame)
        for column in text_columns:
            frame[column] = frame[column].astype("string").str.strip()
        keep = frame[text_columns].notna().all(axis=1) & (frame[text_columns] != "").all(axis=1)
        if label_column:
            frame[label_column] = as_label_names(frame[label_column])
            keep &= frame[label_column].notna()
        frame = frame[keep]
        empty = before - len(frame)
        frame = frame.drop_duplicates(subset=text_columns)
        duplicates = before - empty - len(frame)
        logger.info(
            "%s: %s %s, dropped %d empty and %d duplicate -> %s", split, f"{before:,}", rows, empty, duplicates,
            f"{len(frame):,}",
        )  # fmt: skip
        if frame.empty:
            raise UserError(
                f"the {split} data has no rows left after cleaning ({empty} empty, {duplicates} duplicate); "
                f"check the file and --text-column"
            )
        cleaned[split] = frame.reset_index(drop=True)
    held_out = [cleaned[s] for s in ("validation", "test") if s in cleaned]
    if held_out and "train" in cleaned:
        seen = set(pd.concat(held_out)[text_columns].itertuples(index=False, name=None))
        train = cleaned["train"]
        leaked = train[text_columns].apply(tuple, axis=1).isin(seen)
        if leaked.any():
            logger.info("train: dropped %d rows that also appear in validation/test", int(leaked.sum()))
            if leaked.all():
                raise UserError(
                    "every training row also appears in the validation/test data, so nothing is left to "
                    "train on; give training and evaluation files with different rows"
                )
            cleaned["train"] = train[~leaked].reset_index(drop=True)
    return cleaned


def split(splits: dict, seed: int, stratify: str | None = None, fraction: float = 0.1) -> dict:
    """Fill in missing validation/test splits by carving `fraction` of the training rows for each (80/10/10)."""
    from sklearn.model_selection import train_test_split

    splits = dict(splits)
    missing = [s for s in ("validation", "test") if s not in splits]
    if not missing:
        return splits
    train = splits["train"]
    n_out = max(1, round(len(train) * fraction))
    if len(train) < n_out * len(missing) + 2:
        raise UserError(
            f"only {len(train)} training rows: too few to split off {'/'.join(missing)}; add data or pass those files"
        )
    classes = train[stratify].nunique() if stratify else 0
    if classes > n_out:
        raise UserError(
            f"{classes} classes in only {len(train)} training rows: a held-out {'/'.join(missing)} split of "
            f"{n_out} rows cannot hold every class; pass --validation-file and --test-file, or add rows "
            f"(about {10 * classes} at least)"
        )
    for name in missing:
        labels = train[stratify] if stratify else None
        if labels is not None and labels.value_counts().min() < 2:
            labels = None  # a class with one row cannot be stratified; fall back to a plain seeded split
        train, held = train_test_split(train, test_size=n_out, random_state=seed, stratify=labels)
        splits[name] = held.reset_index(drop=True)
    splits["train"] = train.reset_index(drop=True)
    logger.info("split sizes: %s", {s: len(f) for s, f in splits.items()})
    return splits


def subsample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows, drawn with the seed (the whole table when limit is None or larger)."""
    if limit is None or limit >= len(frame):
        return frame
    logger.info("using a seeded sample of %d of %d rows (raise the --max-*-samples flag for more)", limit, len(frame))
    return frame.sample(n=limit, random_state=seed).reset_index(drop=True)


# ---------------------------------------------------------------- labels


def as_label_names(values: pd.Series) -> pd.Series:
    """Labels as the names they are: text as written, stripped ('pos ' is 'pos'); a number read from JSON or
    parquet as its text (1.0 read where blanks made the column float is '1'); missing or blank: NA."""
    names = values.map(lambda v: None if pd.isna(v) else _label_name(v))  # None, NaN, pd.NA: missing
    names = names.astype("string").str.strip()
    return names.mask(names == "")


def _name_order(name: str):
    """Label names in order: numbers numerically (2 before 10), then the rest alphabetically."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def encode_labels(splits: dict, label_column: str) -> tuple[dict, list[str]]:
    """Add an integer `labels` column; names come from the training split, sorted (numbers numerically)."""
    values = splits["train"][label_column]
    names = sorted({_label_name(v) for v in values.unique()}, key=_name_order)
    by_case: dict[str, list[str]] = {}
    for name in names:
        by_case.setdefault(name.casefold(), []).append(name)
    for alike in (group for group in by_case.values() if len(group) > 1):
        logger.warning(
            "labels %s differ only by case: they are %d classes; if they are one, write them alike",
            " and ".join(map(repr, alike)),
            len(alike),
        )
    if len(names) < 2:
        raise UserError(
            f"label column '{label_column}' has only one class ({names[0]!r}) in the training data; "
            f"classification needs at least two (check --label-column)"
        )
    ids = {name: i for i, name in enumerate(names)}
    encoded = {}
    for split, frame in splits.items():
        as_names = frame[label_column].map(_label_name)
        unseen = sorted(set(as_names) - set(ids))
        if unseen:
            raise UserError(
                f"the {split} data has labels not seen in training: {', '.join(unseen[:5])}; "
                f"add training rows with them or remove them from {split}"
            )
        encoded[split] = frame.assign(labels=as_names.map(ids).astype(int))
    for split, frame in encoded.items():
        counts = frame["labels"].value_counts().sort_index()
        logger.info("%s class counts: %s", split, {names[i]: int(n) for i, n in counts.items()})
    return encoded, names


def _label_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas reads an int column with blanks as float: 1.0 -> "1"
    return str(value)


# ---------------------------------------------------------------- what the recipes call


def _labelled_tables(data: ClassificationData) -> None:
    """Refuse plain text for a classifier, before it is read as one unlabelled row per file."""
    for flag, path in (("--train-file", data.train_file), ("--validation-file", data.validation_file),
                       ("--test-file", data.test_file)):  # fmt: skip
        if path and Path(path).suffix.lower() in CORPUS_SUFFIXES:
            raise UserError(
                f"{flag} '{path}' is plain text, which holds no labels; a classifier needs a table with a text "
                f"column and a label column ({' '.join(TABLE_SUFFIXES)}, such as a csv with the header text,label); "
                f"plain text trains recipes/causal_lm.py"
            )


def classification_splits(data: ClassificationData, seed: int) -> tuple[dict, list[str]]:
    """Load -> check columns -> clean -> split 80/10/10 (stratified) where needed -> cap sizes -> augment the
    training split (--augment) -> encode labels."""
    _labelled_tables(data)
    splits = load_splits(
        data.train_file, data.validation_file, data.test_file, data.dataset, data.dataset_config, folders=False
    )
    if "labels" in data.text_column:
        raise UserError(
            "--text-column labels: 'labels' is the name the recipes give the encoded label column; rename that "
            "column in your data (text, say)"
        )
    require_columns(splits, [*data.text_column, data.label_column], "--text-column/--label-column")
    splits = clean(splits, data.text_column, data.label_column)
    splits = split(splits, seed, stratify=data.label_column)
    splits["train"] = subsample(splits["train"], data.max_train_samples, seed)
    splits["validation"] = subsample(splits["validation"], data.max_eval_samples, seed)
    splits["test"] = subsample(splits["test"], data.max_test_samples, seed)
    splits["train"] = augment.augment(splits["train"], data.text_column, data.augment, seed)
    return encode_labels(splits, data.label_column)  # logs each split's class counts


def labelled_rows(data: ClassificationData) -> pd.DataFrame:
    """Every labelled row the recipe would see (all given splits), cleaned and de-duplicated (--kfold splits these)."""
    _labelled_tables(data)
    splits = load_splits(
        data.train_file, data.validation_file, data.test_file, data.dataset, data.dataset_config, folders=False
    )
    require_columns(splits, [*data.text_column, data.label_column], "--text-column/--label-column")
    splits = clean(splits, data.text_column, data.label_column)
    rows = pd.concat(splits.values(), ignore_index=True)[[*data.text_column, data.label_column]]
    return rows.drop_duplicates(subset=data.text_column, ignore_index=True)


def corpus_splits(data: CorpusData) -> dict:
    """Documents (strings) per split for causal-LM training: load -> check the text column -> clean."""
    splits = load_splits(data.train_file, data.validation_file, data.test_file, data.dataset, data.dataset_config)
    require_columns(splits, [data.text_column], "--text-column")
    splits = clean(splits, [data.text_column], rows="documents")
    return {name: frame[data.text_column].tolist() for name, frame in splits.items()}
