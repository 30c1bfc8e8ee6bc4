import pandas as pd

from common.data import augment, classification_splits
from tests.conftest import classification_config


def test_augment_is_seeded_keeps_labels_and_adds_n_variants():
    train = pd.DataFrame({"text": ["one two three four five", "six seven eight"], "label": ["a", "b"]})
    first = augment.augment(train, ["text"], 3, seed=1)
    assert len(first) == 8 and first["label"].tolist() == ["a", "b"] * 4
    assert first.equals(augment.augment(train, ["text"], 3, seed=1))
    assert not first.equals(augment.augment(train, ["text"], 3, seed=2))
    for original, edited in zip(train["text"].tolist() * 3, first["text"].iloc[2:]):
        assert set(edited.split()) <= set(original.split())  # deletions and swaps only: no new words


def test_augmentation_never_touches_validation_or_test_rows(tmp_path, reviews_frame):
    reviews_frame.to_csv(tmp_path / "train.csv", index=False)
    config = classification_config(train_file=str(tmp_path / "train.csv"), max_length=16)
    augmented, _ = classification_splits(config.derive(augment=2).data, seed=42)
    reference, _ = classification_splits(config.data, seed=42)
    assert len(augmented["train"]) == 3 * len(reference["train"])
    for split in ("validation", "test"):
        assert augmented[split].equals(reference[split])
