"""--push-to-hub: checked before training, the run's own files uploaded after the save, tested offline up to the
upload call; and the model card's hub metadata for the embedded models and hub datasets."""

import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard

from common import tasks
from common.report.card import model_card
from common.run import command_line
from recipes import bert_classification


def run(tiny_bert, reviews_csv, out, *flags):
    command_line(
        bert_classification.main,
        bert_classification.DEFAULTS,
        ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--output-dir", str(out), "--epochs", "1",
         "--batch-size", "8", "--precision", "fp32", *flags],
    )  # fmt: skip


@pytest.fixture
def hub_calls(monkeypatch) -> list[tuple[str, dict]]:
    """HfApi's repository calls, recorded instead of sent; a token that is there."""
    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE")  # the tests' guard against the network: these calls never reach it
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(
        HfApi,
        "create_repo",
        lambda self, repo, **kw: (
            calls.append(("create_repo", {"repo": repo, **kw})) or f"https://huggingface.co/{repo}"
        ),
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload_folder", kw)))
    return calls


def test_push_to_hub_uploads_the_runs_own_files_with_a_card_that_names_the_repo(
    tiny_bert, reviews_csv, tmp_path, hub_calls
):
    out = tmp_path / "tickets"
    run(tiny_bert, reviews_csv, out)
    (out / "my_notes.txt").write_text("mine, not the run's")
    run(tiny_bert, reviews_csv, out, "--overwrite", "--push-to-hub", "me/tickets")
    (create, created), (upload, uploaded) = hub_calls
    assert (create, created["repo"], created["exist_ok"]) == ("create_repo", "me/tickets", True)
    assert upload == "upload_folder" and uploaded["repo_id"] == "me/tickets" and uploaded["folder_path"] == out
    patterns = uploaded["allow_patterns"]
    assert {"model.safetensors", "README.md", "report.md", "tokenizer.json"} <= set(patterns)
    assert "my_notes.txt" not in patterns and ".lm-recipes-run" not in patterns
    card = (out / "README.md").read_text()
    assert 'pipeline("text-classification", model="me/tickets")' in card and "# tickets" in card


def test_push_to_hub_without_a_token_stops_before_anything_loads(tiny_bert, reviews_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit) as stop:
        run(tiny_bert, reviews_csv, tmp_path / "out", "--push-to-hub", "me/tickets")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert "--push-to-hub me/tickets needs a hub token: run `hf auth login` or set HF_TOKEN" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_upload_says_the_run_is_saved_and_how_to_upload_it(
    tiny_bert, reviews_csv, tmp_path, hub_calls, monkeypatch, capsys
):
    def no_network(self, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(HfApi, "upload_folder", no_network)
    with pytest.raises(SystemExit) as stop:
        run(tiny_bert, reviews_csv, tmp_path / "out", "--push-to-hub", "me/tickets")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "the run is saved in" in err and f"`hf upload me/tickets {tmp_path / 'out'}`" in err
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--push-to-hub", "me/my model"], "must be a hub repository id such as your-name/my-model"),
        (["--push-to-hub", "me/tickets", "--kfold", "3"], "--push-to-hub uploads one model; --search and --kfold"),
    ],
)
def test_a_push_that_cannot_work_is_refused_in_one_line(
    tiny_bert, reviews_csv, tmp_path, hub_calls, flags, message, capsys
):
    with pytest.raises(SystemExit) as stop:
        run(tiny_bert, reviews_csv, tmp_path / "out", *flags)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err


def test_the_card_names_the_hub_originals_of_embedded_models_and_hub_datasets():
    config, task = bert_classification.DEFAULTS, tasks.get("classification")
    imdb = config.derive(dataset="imdb")
    card = ModelCard(model_card(imdb, {"test_accuracy": 0.91, "test_loss": 0.25}, task)).data
    assert card.base_model == "sentence-transformers/all-MiniLM-L6-v2" and card.datasets == ["imdb"]
    assert card.model_name == "bert_classification"  # the folder's name, not its path
    embedded_data = ModelCard(model_card(config, {"test_accuracy": 0.86}, task)).data
    assert embedded_data.datasets is None  # the embedded snippets are not a hub dataset
    hub_model = ModelCard(model_card(config.derive(model="bert-base-uncased"), {}, task)).data
    assert hub_model.base_model == "bert-base-uncased" and hub_model.eval_results is None


def test_push_to_hub_offline_is_refused_before_anything_loads(tiny_bert, reviews_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as stop:
        run(tiny_bert, reviews_csv, tmp_path / "out", "--push-to-hub", "me/tickets")
    assert stop.value.code == 2 and "needs the hub, and HF_HUB_OFFLINE is set" in capsys.readouterr().err
