"""--kfold (common.run.kfold) and --search (common.run.search) through the recipes, on tiny models."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from common.config import cli
from common.errors import UserError
from common.run import from_argv, search
from common.run import kfold as crossval
from common.train.checkpoints import mark_run
from recipes import bert_classification, causal_lm

FAST = ["--epochs", "1", "--batch-size", "4", "--max-length", "16", "--precision", "fp32"]


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("kfold") / "rows.csv"
    pd.DataFrame(
        {
            "text": [f"good film number {i}" for i in range(15)] + [f"bad film number {i}" for i in range(9)],
            "label": ["pos"] * 15 + ["neg"] * 9,
        }
    ).to_csv(path, index=False)
    return path


def test_folds_are_disjoint_cover_every_row_and_keep_the_class_balance():
    labels = np.array(["a"] * 30 + ["b"] * 12 + ["c"] * 6)
    held_out = crossval.folds(labels, 3, seed=0)
    together = np.concatenate(held_out)
    assert len(together) == len(labels) and sorted(together) == list(range(len(labels)))  # every row exactly once
    for fold in held_out:
        assert sorted(pd.Series(labels[fold]).value_counts().tolist()) == [2, 4, 10]  # a third of each class
    with pytest.raises(UserError, match="the rarest class has only 6 rows, fewer than the 8 folds"):
        crossval.folds(labels, 8, seed=0)


def test_kfold_trains_one_model_per_fold_and_reports_mean_and_std(tiny_bert, labelled_csv, tmp_path):
    out = tmp_path / "cv"
    summary = from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        ["--model", tiny_bert, "--train-file", labelled_csv, "--kfold", "3", "--output-dir", out, *FAST],
    )
    assert summary["rows"] == 24 and len(summary["folds"]) == 3
    folds = [json.loads((out / f"fold-{i}" / "metrics.json").read_text()) for i in (1, 2, 3)]
    tested = [
        json.loads((out / f"fold-{i}" / "evaluation.json").read_text())["test"]["confusion_matrix"] for i in (1, 2, 3)
    ]
    assert [sum(map(sum, m)) for m in tested] == [8, 8, 8]  # each fold tests its own third
    accuracies = [f["test_accuracy"] for f in folds]
    assert summary["mean"]["test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert summary["std"]["test_accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert json.loads((out / "kfold.json").read_text()) == summary
    report = (out / "report.md").read_text()
    assert "3-fold cross-validation" in report and "[fold 2](fold-2/report.md)" in report and "+-" in report
    # the folds were trained in a staging folder beside it: what they recorded names where they ended up
    assert json.loads((out / "fold-2" / "run_config.json").read_text())["output_dir"] == str(out / "fold-2")
    assert f"# Run report: {out / 'fold-2'}" in (out / "fold-2" / "report.md").read_text()
    assert not [p for p in out.rglob("*") if p.is_file() and ".partial-" in p.read_text(errors="replace")]
    assert [p.name for p in tmp_path.iterdir()] == ["cv"]


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def test_kfold_cut_off_in_a_fold_leaves_the_folder_as_it_was_and_a_finished_one_keeps_the_users_files(
    tiny_bert, labelled_csv, tmp_path
):
    out = tmp_path / "cv"
    mark_run(out, ["model.safetensors", "metrics.json"])  # an earlier run of ours, and a file of the user's
    (out / "model.safetensors").write_bytes(b"old weights")
    (out / "metrics.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    folds_run = []

    def stopped_in_fold_2(config):
        folds_run.append(config.output.output_dir)
        if len(folds_run) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would (SIGTERM raises runtime.Terminated, also a BaseException)
        return bert_classification.main(config)

    args = ["--model", tiny_bert, "--train-file", labelled_csv, "--kfold", "3", "--output-dir", out, "--overwrite"]
    with pytest.raises(KeyboardInterrupt):
        from_argv(stopped_in_fold_2, bert_classification.DEFAULTS, [*args, *FAST])
    assert len(folds_run) == 2 and _tree(out) == before  # fold 1 was saved, but not into --output-dir
    assert [p.name for p in tmp_path.iterdir()] == ["cv"]  # and the staging folder is gone

    from_argv(bert_classification.main, bert_classification.DEFAULTS, [*args, "--kfold", "2", *FAST])
    names = {p.name for p in out.iterdir()}
    assert {"fold-1", "fold-2", "kfold.json", "notes.txt"} <= names and "model.safetensors" not in names
    assert (out / "notes.txt").read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["cv"]


def test_grid_search_visits_every_grid_point_and_writes_a_rerunnable_best_config(tiny_bert, labelled_csv, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: [1.0e-4, 1.0e-3, 1.0e-2]\nbatch_size: [4, 8]\n")
    out = tmp_path / "search"
    summary = from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--model",
            tiny_bert,
            "--train-file",
            labelled_csv,
            "--search",
            "grid",
            "--search-space",
            space,
            "--output-dir",
            out,
            *FAST,
        ],
    )
    points = {(t["lr"], t["batch_size"]) for t in summary["trials"]}
    assert points == {(lr, b) for lr in (1e-4, 1e-3, 1e-2) for b in (4, 8)} and len(summary["trials"]) == 6
    values = [t["validation_accuracy"] for t in summary["trials"]]
    assert summary["best"]["value"] == max(values)
    assert sorted(p.name for p in out.iterdir()) == [
        ".lm-recipes-run",
        "best_config.yaml",
        "report.md",
        "search.json",
    ]  # trials deleted
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert (best["lr"], best["batch_size"]) == (
        summary["best"]["params"]["lr"],
        summary["best"]["params"]["batch_size"],
    )
    rerun = cli.parse(bert_classification.DEFAULTS, ["--config", str(out / "best_config.yaml")])
    assert rerun.training.lr == best["lr"] and rerun.output.output_dir == f"{out}-best" and not rerun.runs.search
    assert rerun.model.model == str(tiny_bert) and rerun.data.train_file == str(labelled_csv)
    report = (out / "report.md").read_text()
    assert report.count("| ") >= 6 and "**best**" in report and "The test split was not used" in report


def test_random_and_bayes_search_run_the_asked_trials_within_the_ranges(tiny_llama, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small text" for i in range(200)))
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "warmup": [0.0, 0.1]}))
    for kind in ("random", "bayes"):
        out = tmp_path / kind
        summary = from_argv(
            causal_lm.main,
            causal_lm.DEFAULTS,
            [
                "--model",
                tiny_llama,
                "--train-file",
                corpus,
                "--search",
                kind,
                "--trials",
                "3",
                "--search-space",
                space,
                "--output-dir",
                out,
                "--block-size",
                "32",
                "--batch-size",
                "4",
                "--epochs",
                "1",
                "--precision",
                "fp32",
                "--max-train-samples",
                "8",
                "--prompt",
                "",
            ],
        )
        assert len(summary["trials"]) == 3 and all(1e-4 <= t["lr"] <= 1e-2 for t in summary["trials"])
        assert summary["direction"] == "minimize" and summary["best"]["value"] == min(
            t["validation_loss"] for t in summary["trials"]
        )


@pytest.mark.parametrize(
    "text, message",
    [
        ("nope: [1, 2]\n", "'nope' is not a flag that can be searched"),
        ("output_dir: [a, b]\n", "'output_dir' is not a flag that can be searched"),
        ("lr: {low: 1, high: 0.1}\n", "'lr' needs {low: A, high: B} with numbers A < B"),
        ("lr: {low: .nan, high: 0.1}\n", "'lr' needs {low: A, high: B} with numbers A < B"),
        ("lr: {low: small, high: 0.1}\n", "'lr' needs {low: A, high: B} with numbers A < B"),
        ("epochs: [1, 0]\n", "epochs: 0: --epochs must be greater than 0"),
        ("batch_size: {low: -4, high: 8}\n", "batch_size: -4: --batch-size must be greater than 0"),
        ("lr: []\n", "'lr' must be a list of values or a {low, high} range"),
    ],
)
def test_bad_search_spaces_are_one_clear_line(tmp_path, text, message):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    with pytest.raises(UserError, match=message.replace("{", "\\{").replace("}", "\\}")):
        search.read_space(str(space), bert_classification.DEFAULTS)


def test_yaml_numbers_without_a_dot_are_numbers(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1e-5, high: 1e-3, log: true}\nwarmup: [1e-1, 0.2]\n")  # YAML reads 1e-5 as text
    assert search.read_space(str(space), bert_classification.DEFAULTS) == {
        "lr": {"low": 1e-5, "high": 1e-3, "log": True},
        "warmup": [0.1, 0.2],
    }


def test_grid_search_refuses_ranges():
    with pytest.raises(UserError, match="--search grid needs a list of values for every key; lr is a range"):
        search.sampler("grid", {"lr": {"low": 1e-5, "high": 1e-3}}, seed=0)


def test_the_shipped_search_spaces_are_valid():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[3] / "configs" / "search").glob("*.yaml")):
        assert search.read_space(str(path), bert_classification.DEFAULTS)
