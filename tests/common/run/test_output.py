import errno
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.config import OutputConfig
from common.errors import UserError
from common.run import output as outputs
from common.train import checkpoints
from tests.conftest import classification_config


def test_check_output_dir_refuses_another_runs_files(tmp_path):
    outputs.mark_run(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run; pass --overwrite to replace it, --resume"):
        outputs.check_output_dir(tmp_path / "run", overwrite=False)
    assert outputs.check_output_dir(tmp_path / "run", overwrite=False, resume="last") == tmp_path / "run"
    assert outputs.check_output_dir(tmp_path / "run", overwrite=True) == tmp_path / "run"
    assert outputs.check_output_dir(tmp_path / "new", overwrite=False) == tmp_path / "new"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        outputs.check_output_dir(tmp_path / "afile", overwrite=True)
    with pytest.raises(UserError, match="'.*afile' is a file; choose another --output-dir"):
        outputs.check_output_dir(tmp_path / "afile" / "out", overwrite=False)


def test_overwrite_never_replaces_what_no_run_of_ours_wrote(tmp_path, monkeypatch):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    outputs.mark_run(repo)  # even a marked folder: a git checkout is never replaced
    link = tmp_path / "link"
    link.symlink_to(mine)
    cases = [
        (mine, "holds files that no run of lm-recipes wrote"),
        (repo, "holds a git repository"),
        (link, "is a symbolic link"),
        (Path.home(), "the root, your home or the current folder"),
    ]
    for folder, message in cases:
        for flags in ({"overwrite": True}, {"overwrite": False, "resume": "last"}, {"overwrite": False}):
            with pytest.raises(UserError, match=message):
                outputs.check_output_dir(folder, **flags)
    current = tmp_path / "cwd"  # the current folder, even one that looks like a run
    (current / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(current)
    with pytest.raises(UserError, match="the root, your home or the current folder"):
        outputs.check_output_dir(Path("."), overwrite=True)
    assert (mine / "chapter1.tex").read_text() == "years of work" and (repo / ".git").is_dir()
    # what a run of ours left: its marker, or only checkpoints from an interrupted run, or an earlier version's files
    interrupted = tmp_path / "interrupted"
    (interrupted / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    older = tmp_path / "older"
    older.mkdir()
    (older / "run_config.json").write_text("{}")
    (older / "metrics.json").write_text("{}")
    for folder in (interrupted, older):
        assert outputs.check_output_dir(folder, overwrite=True) == folder


def test_unwritable_output_parent_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)  # tests run as root, who may write anywhere
    with pytest.raises(UserError, match="cannot write to .* choose a folder you can write to"):
        outputs.check_output_dir(tmp_path / "out", overwrite=False)


def test_save_run_writes_safetensors_and_replaces_atomically(tmp_path, tiny_gpt2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from a previous run")
    config = classification_config(output_dir=str(out), seed=1)
    outputs.save_run(config, model, tokenizer, {"test_accuracy": 0.9}, [{"loss": 1.0, "step": 1}])
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "old.txt" not in names and outputs.RUN_MARKER in names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    assert json.loads((out / "metrics.json").read_text()) == {"test_accuracy": 0.9}
    assert json.loads((out / "log_history.json").read_text()) == [{"loss": 1.0, "step": 1}]
    saved = json.loads((out / "run_config.json").read_text())
    assert saved == config.flat() and saved["task"] == "classification" and saved["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


def test_a_full_disk_while_saving_is_one_clear_error_and_leaves_nothing(tmp_path, tiny_gpt2):
    from transformers import AutoTokenizer

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    model = SimpleNamespace(save_pretrained=full_disk)
    with pytest.raises(UserError, match="the disk is full: could not save the model to .*nothing was written"):
        outputs.save_run(
            classification_config(output_dir=str(tmp_path / "out")), model, AutoTokenizer.from_pretrained(tiny_gpt2), {}
        )
    assert list(tmp_path.iterdir()) == []


def test_only_completely_written_checkpoints_are_resumed(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    for step, complete in [(2, True), (4, True), (6, False)]:  # 6: the process died while writing it
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (folder / f"checkpoint-{step}" / checkpoints.COMPLETE).write_text("")
    assert checkpoints.last_complete_checkpoint(folder).name == "checkpoint-4"
    assert outputs.resume_point(OutputConfig(resume="last", output_dir=str(tmp_path / "run"))).endswith("checkpoint-4")
    with pytest.raises(UserError, match="--resume: no complete checkpoint in .*add --save-steps N"):
        outputs.resume_point(OutputConfig(resume="last", output_dir=str(tmp_path / "other")))
    with pytest.raises(UserError, match="is not a complete checkpoint folder"):
        outputs.resume_point(OutputConfig(resume=str(folder / "checkpoint-6"), output_dir=str(tmp_path / "run")))
    assert outputs.resume_point(OutputConfig(resume=None, output_dir=str(tmp_path))) is None
