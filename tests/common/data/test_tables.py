import json
import re

import pandas as pd
import pytest

from common.data import tables as data
from common.errors import UserError, first_line


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_read_file_every_table_format(tmp_path, reviews_frame, suffix):
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        reviews_frame.to_csv(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(reviews_frame.to_dict(orient="records")))
    elif suffix == ".jsonl":
        reviews_frame.to_json(path, orient="records", lines=True)
    else:
        reviews_frame.to_parquet(path)
    frame = data.read_file(path)
    assert list(frame["text"]) == list(reviews_frame["text"])
    assert list(frame["label"]) == list(reviews_frame["label"])


def test_read_file_txt_and_folder_give_one_document_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("first document\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second document\n")
    assert data.read_file(tmp_path / "a.txt")["text"].tolist() == ["first document\n"]
    assert sorted(data.read_file(tmp_path)["text"]) == ["first document\n", "second document\n"]


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "nope.csv", "does not exist"),
        (lambda p: (p / "x.xlsx").write_text("a") and p / "x.xlsx", "unsupported extension '.xlsx'"),
        (lambda p: (p / "e.csv").write_text("") or p / "e.csv", "is empty"),
        (lambda p: (p / "b.csv").write_bytes(b"text,label\n\xff\xfe bad,1\n") and p / "b.csv", "not valid UTF-8"),
        (
            lambda p: (p / "m.jsonl").write_text('{"text": "ok"}\n{broken\n') and p / "m.jsonl",
            "could not be read as jsonl",
        ),
        (lambda p: p, "no .txt files"),
    ],
)
def test_read_file_errors_name_the_problem(tmp_path, make, expected):
    with pytest.raises(UserError, match=expected):
        data.read_file(make(tmp_path))


def test_clean_strips_and_drops_empty_and_duplicates():
    frame = pd.DataFrame({"text": ["  good ", "good", "", None, "bad", "  "], "label": ["p", "p", "p", "n", "n", "n"]})
    cleaned = data.clean({"train": frame}, ["text"], "label")["train"]
    assert cleaned["text"].tolist() == ["good", "bad"]


def test_clean_drops_training_rows_that_leak_into_test():
    train = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    test = pd.DataFrame({"text": ["b"], "label": [1]})
    cleaned = data.clean({"train": train, "test": test}, ["text"], "label")
    assert cleaned["train"]["text"].tolist() == ["a", "c"]


def test_clean_refuses_a_split_left_empty():
    with pytest.raises(UserError, match="no rows left after cleaning"):
        data.clean({"train": pd.DataFrame({"text": ["", "  "], "label": [1, 0]})}, ["text"], "label")


def test_split_is_80_10_10_stratified_disjoint_and_seeded():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(200)], "label": ["a"] * 150 + ["b"] * 50})
    first = data.split({"train": frame}, seed=3, stratify="label")
    again = data.split({"train": frame}, seed=3, stratify="label")
    assert {k: len(v) for k, v in first.items()} == {"train": 160, "validation": 20, "test": 20}
    for name in ("validation", "test"):  # 3:1 class balance kept in each held-out split
        assert first[name]["label"].value_counts().to_dict() == {"a": 15, "b": 5}
    texts = [set(first[s]["text"]) for s in ("train", "validation", "test")]
    assert set.union(*texts) == set(frame["text"]) and sum(map(len, texts)) == 200
    assert first["test"]["text"].tolist() == again["test"]["text"].tolist()


def test_split_only_fills_missing_splits():
    train = pd.DataFrame({"text": [f"t{i}" for i in range(50)], "label": [0, 1] * 25})
    test = pd.DataFrame({"text": ["x"], "label": [0]})
    out = data.split({"train": train, "test": test}, seed=0, stratify="label")
    assert out["test"] is test and len(out["validation"]) == 5 and len(out["train"]) == 45


def test_encode_labels_strings_sorted_and_integers_numeric():
    splits, names = data.encode_labels({"train": pd.DataFrame({"label": ["pos", "neg", "pos"]})}, "label")
    assert names == ["neg", "pos"] and splits["train"]["labels"].tolist() == [1, 0, 1]
    splits, names = data.encode_labels({"train": pd.DataFrame({"label": [10, 2, 2, 1]})}, "label")
    assert names == ["1", "2", "10"] and splits["train"]["labels"].tolist() == [2, 1, 1, 0]


def test_labels_are_names_as_written(tmp_path, caplog):
    """A label is a name: `01` is not `1`, `None` is not missing, `pos ` is `pos`, and `POS` is another class
    (said in a warning); numbers and text mixed in JSON are names too (it was a TypeError)."""
    (tmp_path / "l.csv").write_text("text,label\na,01\nb,1\nc,None\nd,pos \ne,POS\nf,pos\ng,\n")
    frame = data.read_file(tmp_path / "l.csv")
    cleaned = data.clean({"train": frame}, ["text"], "label")
    with caplog.at_level("WARNING"):
        splits, names = data.encode_labels(cleaned, "label")
    assert names == ["01", "1", "None", "POS", "pos"]
    assert len(splits["train"]) == 6  # the row with no label is dropped, None is kept
    assert "labels 'POS' and 'pos' differ only by case: they are 2 classes" in caplog.text
    (tmp_path / "m.jsonl").write_text(
        "".join(
            json.dumps({"text": t, "label": v}) + "\n"
            for t, v in [("a", 0), ("b", 1), ("c", "unknown"), ("d", True), ("e", 1.0)]
        )
    )
    cleaned = data.clean({"train": data.read_file(tmp_path / "m.jsonl")}, ["text"], "label")
    splits, names = data.encode_labels(cleaned, "label")
    assert names == ["0", "1", "True", "unknown"] and splits["train"]["labels"].tolist() == [0, 1, 3, 2, 1]


def test_what_is_not_a_table_is_named_for_what_it_is(tmp_path):
    import os

    (tmp_path / "u16.csv").write_text("text,label\nhello,pos\n", encoding="utf-16")
    (tmp_path / "lines.json").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    (tmp_path / "lists.json").write_text('[["a", "x"], ["b", "y"]]')
    os.mkfifo(tmp_path / "pipe.csv")
    for name, message in [
        ("u16.csv", "is UTF-16 text; re-save it as UTF-8"),
        ("lines.json", "holds JSON lines (one object per line), not one JSON document; rename it to .jsonl"),
        ("lists.json", "holds rows without column names (lists or bare values, not objects)"),
        ("pipe.csv", "is not a regular file (a pipe or a device)"),
    ]:
        with pytest.raises(UserError, match=re.escape(message)):
            data.read_file(tmp_path / name)
    corpus = tmp_path / "corpus"  # a named pipe among a corpus's .txt files is passed over, not read for ever
    corpus.mkdir()
    (corpus / "a.txt").write_text("a document")
    os.mkfifo(corpus / "b.txt")
    assert data.read_file(corpus)["text"].tolist() == ["a document"]


def test_encode_labels_errors():
    with pytest.raises(UserError, match="only one class"):
        data.encode_labels({"train": pd.DataFrame({"label": ["a", "a"]})}, "label")
    with pytest.raises(UserError, match="labels not seen in training: c"):
        data.encode_labels(
            {"train": pd.DataFrame({"label": ["a", "b"]}), "test": pd.DataFrame({"label": ["c"]})}, "label"
        )


def test_require_columns_lists_what_is_there():
    with pytest.raises(UserError, match=r"column 'review' is not in the train data \(columns: text, label\)"):
        data.require_columns({"train": pd.DataFrame({"text": [], "label": []})}, ["review"], "--text-column")


def test_load_splits_needs_some_data_and_train_with_eval_files(tmp_path):
    with pytest.raises(UserError, match="no data given"):
        data.load_splits()
    with pytest.raises(UserError, match="need a --train-file"):
        data.load_splits(test_file=tmp_path / "t.csv")


def test_load_splits_unknown_hub_dataset_offline_is_one_clear_error():
    with pytest.raises(UserError, match="could not load dataset 'no-such/dataset'"):
        data.load_splits(dataset="no-such/dataset")


def test_subsample_is_seeded_and_bounded(reviews_frame):
    assert data.subsample(reviews_frame, None, 0) is reviews_frame
    a, b = data.subsample(reviews_frame, 5, 1), data.subsample(reviews_frame, 5, 1)
    assert len(a) == 5 and a["text"].tolist() == b["text"].tolist()


def test_an_unreadable_file_is_one_clear_line(tmp_path, monkeypatch):
    from pathlib import Path

    corpus = tmp_path / "locked.txt"
    corpus.write_text("some text")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # tests run as root, whom chmod does not stop
    with pytest.raises(UserError, match="'.*locked.txt' cannot be read \\(Permission denied\\); check the file"):
        data.read_file(corpus)


def test_a_long_error_quotes_at_most_a_line(tmp_path):
    wide = pd.DataFrame([[1] * 5000], columns=[f"column{i}" for i in range(5000)])
    with pytest.raises(UserError, match="column 'text' is not in the train data") as error:
        data.require_columns({"train": wide}, ["text"], "--text-column")
    assert len(str(error.value)) < 500
    assert len(first_line(ValueError("x" * 10_000))) < 200


# the UCI SMS spam file as it ships: tab-separated, no header row, commas inside the texts
SPAM = (
    "ham\tGo until jurong point, crazy.. Available only in bugis n great world\n"
    "ham\tOk lar... Joking wif u oni...\n"
    "spam\tFree entry in 2 a wkly comp to win FA Cup final tkts, text FA to 87121\n"
)


@pytest.mark.parametrize("name", ["spam.tsv", "spam.tab", "spam.csv"])
def test_tab_separated_text_is_read_by_its_tabs_under_any_of_its_names(tmp_path, name):
    path = tmp_path / name
    path.write_text("label\ttext\n" + SPAM)
    frame = data.read_file(path)
    assert frame.columns.tolist() == ["label", "text"] and frame["label"].tolist() == ["ham", "ham", "spam"]
    assert frame["text"][0] == "Go until jurong point, crazy.. Available only in bugis n great world"


def test_a_file_without_a_header_row_is_told_so_with_the_fix(tmp_path):
    path = tmp_path / "spam.tsv"
    path.write_text(SPAM)
    splits = {"train": data.read_file(path)}
    with pytest.raises(UserError, match="first row looks like data, not column names .* no header row; add one"):
        data.require_columns(splits, ["text", "label"], "--text-column/--label-column")


def test_csv_that_does_not_parse_but_has_tabs_suggests_tsv(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("label\ttext\nham\tone, two\nspam\tthree\tfour, five, six\n")
    with pytest.raises(UserError, match="has tabs in it: if it is tab-separated, rename it to .tsv"):
        data.read_file(path)


def test_plain_text_given_to_a_classifier_is_told_it_holds_no_labels(tmp_path):
    from common.config import ClassificationData

    (tmp_path / "notes.txt").write_text("some text\n")
    config = ClassificationData(train_file=str(tmp_path / "notes.txt"))
    with pytest.raises(UserError, match="is plain text, which holds no labels; a classifier needs a table"):
        data.classification_splits(config, seed=0)


def test_a_run_on_a_file_records_the_file_not_the_default_dataset():
    from recipes import bert_classification

    config = bert_classification.DEFAULTS.derive(train_file="mine.csv")
    assert bert_classification.DEFAULTS.data.dataset == "embedded:rotten-tomatoes"
    assert config.data.dataset is None and config.flat()["train_file"] == "mine.csv"
