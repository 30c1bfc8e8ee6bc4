import errno
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.errors import UserError
from common.run import folders, resume
from common.run import output as outputs
from common.train import checkpoints
from tests.conftest import classification_config


def test_check_output_dir_refuses_another_runs_files(tmp_path):
    checkpoints.mark_run(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run; pass --overwrite to replace it, --resume"):
        folders.check_output_dir(tmp_path / "run", overwrite=False)
    assert folders.check_output_dir(tmp_path / "run", overwrite=False, resume="last") == tmp_path / "run"
    assert folders.check_output_dir(tmp_path / "run", overwrite=True) == tmp_path / "run"
    assert folders.check_output_dir(tmp_path / "new", overwrite=False) == tmp_path / "new"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        folders.check_output_dir(tmp_path / "afile", overwrite=True)
    with pytest.raises(UserError, match="'.*afile' is a file; choose another --output-dir"):
        folders.check_output_dir(tmp_path / "afile" / "out", overwrite=False)


def test_overwrite_never_replaces_what_no_run_of_ours_wrote(tmp_path, monkeypatch):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    checkpoints.mark_run(repo)  # even a marked folder: a git checkout is never replaced
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
                folders.check_output_dir(folder, **flags)
    current = tmp_path / "cwd"  # the current folder, even one that looks like a run
    (current / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(current)
    with pytest.raises(UserError, match="the root, your home or the current folder"):
        folders.check_output_dir(Path("."), overwrite=True)
    assert (mine / "chapter1.tex").read_text() == "years of work" and (repo / ".git").is_dir()
    # what a run of ours left: its marker, or only checkpoints from an interrupted run, or an earlier version's files
    interrupted = tmp_path / "interrupted"  # what a run of ours left before its first checkpoint marked it
    (interrupted / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (interrupted / "tensorboard").mkdir()
    (interrupted / "tensorboard" / "events.out.tfevents.1.host").write_text("")
    assert folders.check_output_dir(interrupted, overwrite=True) == interrupted


def test_files_named_like_a_run_but_unmarked_are_never_replaced(tmp_path):
    older = tmp_path / "older"  # an old version's run, or the user's own files with a run's names
    (older / "thesis").mkdir(parents=True)
    (older / "run_config.json").write_text("{}")
    (older / "metrics.json").write_text("{}")
    (older / "precious.csv").write_text("a,b\n")
    mine = tmp_path / "mine"  # the names a run in progress writes, holding something else
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "checkpoints" / "notes.txt").write_text("mine")
    for folder, message in ((older, "but no .lm-recipes-run marker"), (mine, "holds files that no run")):
        for flags in ({"overwrite": True}, {"overwrite": False, "resume": "last"}):
            with pytest.raises(UserError, match=message):
                folders.check_output_dir(folder, **flags)
    assert (older / "precious.csv").read_text() == "a,b\n" and (mine / "checkpoints" / "notes.txt").exists()


def test_a_run_folder_holding_a_symbolic_link_anywhere_is_never_replaced_or_resumed(tmp_path):
    shared = tmp_path / "shared_logs"  # other experiments' event files
    shared.mkdir()
    (shared / "events.out.tfevents.9.other").write_text("theirs")
    run = tmp_path / "run"
    checkpoints.mark_run(run)
    (run / "tensorboard").symlink_to(shared)
    deeper = tmp_path / "deeper"
    (deeper / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    checkpoints.mark_run(deeper)
    (deeper / "checkpoints" / "checkpoint-2" / "model.safetensors").symlink_to(shared / "events.out.tfevents.9.other")
    for folder, link in ((run, "tensorboard"), (deeper, "checkpoints/checkpoint-2/model.safetensors")):
        for flags in ({"overwrite": True}, {"overwrite": False, "resume": "last"}):
            with pytest.raises(UserError, match=f"holds a symbolic link \\({link} -> "):
                folders.check_output_dir(folder, **flags)
    assert (shared / "events.out.tfevents.9.other").read_text() == "theirs"


def test_unwritable_output_parent_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(folders.os, "access", lambda path, mode: False)  # tests run as root, who may write anywhere
    with pytest.raises(UserError, match="cannot write to .* choose a folder you can write to"):
        folders.check_output_dir(tmp_path / "out", overwrite=False)


def test_save_run_writes_safetensors_and_replaces_atomically(tmp_path, tiny_gpt2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from before")  # in an unmarked folder nothing is provably a run's: kept
    config = classification_config(output_dir=str(out), seed=1)
    outputs.save_run(config, model, tokenizer, {"test_accuracy": 0.9}, [{"loss": 1.0, "step": 1}])
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and checkpoints.RUN_MARKER in names
    assert (out / "old.txt").read_text() == "from before"
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    assert json.loads((out / "metrics.json").read_text()) == {"test_accuracy": 0.9}
    assert json.loads((out / "log_history.json").read_text()) == [{"loss": 1.0, "step": 1}]
    saved = json.loads((out / "run_config.json").read_text())
    assert saved == config.flat() and saved["task"] == "classification" and saved["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [out, *out.iterdir()] if p.name != "old.txt"}
    assert modes["model.safetensors"] == 0o666 & ~umask  # safetensors wrote it 600, every other file 644
    assert set(modes.values()) == {0o666 & ~umask, 0o777 & ~umask}


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
        write_checkpoint(folder / f"checkpoint-{step}")
        if not complete:  # Trainer had not written its state yet, nor we COMPLETE
            (folder / f"checkpoint-{step}" / checkpoints.COMPLETE).unlink()
            (folder / f"checkpoint-{step}" / "trainer_state.json").unlink()
    assert checkpoints.last_complete_checkpoint(folder).name == "checkpoint-4"
    run = str(tmp_path / "run")
    assert resume.resume_point(classification_config(resume="last", output_dir=run)).endswith("checkpoint-4")
    with pytest.raises(UserError, match="--resume: no complete checkpoint in .*add --save-steps N"):
        resume.resume_point(classification_config(resume="last", output_dir=str(tmp_path / "other")))
    with pytest.raises(UserError, match="is not a complete checkpoint folder"):
        resume.resume_point(classification_config(resume=str(folder / "checkpoint-6"), output_dir=run))
    assert resume.resume_point(classification_config(output_dir=str(tmp_path))) is None


def write_checkpoint(folder, tiny_gpt2=None, config=None):
    """A checkpoint as Trainer and MarkCompleteCheckpoints leave it: weights, a torch.save file, Trainer's state,
    settings, COMPLETE."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.ones(64)}, folder / "model.safetensors")
    torch.save({"state": {}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text('{"global_step": 10}')
    if config is not None:
        (folder / checkpoints.RUN_CONFIG).write_text(json.dumps(config.flat()))
    (folder / checkpoints.COMPLETE).write_text("")


def test_a_damaged_newest_checkpoint_is_passed_over_for_the_one_before(tmp_path, tiny_gpt2, caplog):
    run = tmp_path / "run"
    config = classification_config(resume="last", output_dir=str(run))
    for step in (10, 20):
        write_checkpoint(run / "checkpoints" / f"checkpoint-{step}", tiny_gpt2, config)
    assert resume.resume_point(config).endswith("checkpoint-20")
    weights = run / "checkpoints" / "checkpoint-20" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # cut short after it was marked COMPLETE
    assert checkpoints.damage(weights.parent).startswith("model.safetensors is ")
    assert resume.resume_point(config).endswith("checkpoint-10")
    assert "passing over" in caplog.text and "checkpoint-20" in caplog.text
    optimizer = run / "checkpoints" / "checkpoint-10" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:50])
    with pytest.raises(UserError, match="every checkpoint in .* is damaged"):
        resume.resume_point(config)
    with pytest.raises(UserError, match="is damaged \\(optimizer.pt is cut short"):
        resume.resume_point(config.derive(resume=str(optimizer.parent)))


def test_a_checkpoint_missing_a_part_is_passed_over_and_pickle_needs_asking(tmp_path, caplog):
    import torch

    run = tmp_path / "run"
    config = classification_config(resume="last", output_dir=str(run))
    for step in (10, 20, 30, 40):
        write_checkpoint(run / "checkpoints" / f"checkpoint-{step}", config=config)
    (run / "checkpoints" / "checkpoint-40" / "trainer_state.json").unlink()
    (run / "checkpoints" / "checkpoint-30" / "model.safetensors").unlink()
    (run / "checkpoints" / "checkpoint-20" / "optimizer.pt").unlink()  # resumed, it would start a fresh optimizer
    assert resume.resume_point(config).endswith("checkpoint-10")
    for step, problem in [
        (40, "trainer_state.json is missing"),
        (30, "it holds no model weights"),
        (20, "optimizer.pt"),
    ]:
        assert f"checkpoint-{step}: {problem}" in caplog.text
    pickled = run / "checkpoints" / "checkpoint-10"
    (pickled / "model.safetensors").unlink()
    torch.save({"w": torch.ones(64)}, pickled / "pytorch_model.bin")  # an older Trainer's checkpoint
    with pytest.raises(UserError, match="holds its weights as pickle \\(pytorch_model.bin\\).*--allow-pickle"):
        resume.resume_point(config)
    assert resume.resume_point(config.derive(allow_pickle=True)).endswith("checkpoint-10")


def test_resume_refuses_settings_other_than_the_checkpoints(tmp_path, tiny_gpt2):
    run = tmp_path / "run"
    started = classification_config(output_dir=str(run), batch_size=16, lr=1e-4)
    write_checkpoint(run / "checkpoints" / "checkpoint-10", tiny_gpt2, started)
    same = started.derive(resume="last", report_to="tensorboard", explain=3)  # reporting may change
    assert resume.resume_point(same).endswith("checkpoint-10")
    with pytest.raises(UserError, match="--batch-size 8 \\(was 16\\), --lr 0.005 \\(was 0.0001\\); drop them"):
        resume.resume_point(same.derive(batch_size=8, lr=5e-3))
    with pytest.raises(UserError, match="--model other \\(was tiny\\)"):
        resume.resume_point(same.derive(model="other"))


def test_every_output_setting_may_change_on_resume_and_a_new_one_needs_only_its_field(tmp_path, tiny_gpt2):
    import dataclasses

    from common.config import ClassificationOutput
    from common.config.fields import MAY_CHANGE, option
    from common.tasks.chat import ChatConfig
    from common.tasks.classification import ClassificationConfig

    run = tmp_path / "run"
    started = classification_config(output_dir=str(run))
    write_checkpoint(run / "checkpoints" / "checkpoint-10", tiny_gpt2, started)
    # --baseline was refused here while a list in resume.py named the output settings and nobody added it
    assert resume.resume_point(started.derive(resume="last", baseline="none")).endswith("checkpoint-10")

    @dataclasses.dataclass(frozen=True)
    class WithSummary(ClassificationOutput):  # an output-only setting a maintainer adds: its field, nothing else
        summary: bool = option(False, "also write summary.txt", on_resume=MAY_CHANGE)

    @dataclasses.dataclass(frozen=True)
    class WithSummaryConfig(ClassificationConfig):
        output: WithSummary = dataclasses.field(default_factory=WithSummary)

    flat = {k: v for k, v in started.flat().items() if k not in ("task", "resume")}
    newer = WithSummaryConfig().derive(**flat, resume="last", summary=True)
    assert resume.resume_point(newer).endswith("checkpoint-10")
    chat_output = ChatConfig.settings()  # the chat run's output settings say so in their own fields
    assert {
        n for n, (group, f, _) in chat_output.items() if group == "output" and f.metadata["on_resume"] != MAY_CHANGE
    } == set()


def test_save_keeps_what_the_user_added_to_a_run_folder(tmp_path, tiny_gpt2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)
    out = tmp_path / "out"
    config = classification_config(output_dir=str(out))
    outputs.save_run(config, model, tokenizer, {"test_accuracy": 0.5})
    (out / "notes.md").write_bytes(b"my notes \x00\x01")
    (out / "data").mkdir()
    (out / "data" / "ids.csv").write_text("id\n1\n")
    (out / "metrics.json").write_text("{}")  # a run's own file: replaced
    (out / "checkpoints" / "checkpoint-3").mkdir(parents=True)  # an interrupted run's: gone with the save
    outputs.save_run(config, model, tokenizer, {"test_accuracy": 0.75})
    assert (out / "notes.md").read_bytes() == b"my notes \x00\x01"
    assert (out / "data" / "ids.csv").read_text() == "id\n1\n"
    assert json.loads((out / "metrics.json").read_text()) == {"test_accuracy": 0.75}
    assert not (out / "checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left
    assert "notes.md" not in checkpoints.written_by_runs(out)  # still the user's at the next save


def test_a_save_that_fails_after_the_weights_keeps_them_and_says_where(tmp_path, tiny_gpt2):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    out = tmp_path / "out"
    outputs.save_run(classification_config(output_dir=str(out)), model, tokenizer, {"test_accuracy": 0.5})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def too_large(*args, **kwargs):
        raise SafetensorError("Error while serializing: File too large (os error 27)")

    broken = SimpleNamespace(save_pretrained=too_large)
    with pytest.raises(UserError, match="SafetensorError: .*File too large.*could not save the model.*nothing was"):
        outputs.save_run(classification_config(output_dir=str(out)), broken, tokenizer, {})

    def tokenizer_fails(*args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    with pytest.raises(UserError, match="the trained model is kept in '(.*unsaved-[0-9-]+)'") as error:
        outputs.save_run(
            classification_config(output_dir=str(out)),
            model,
            SimpleNamespace(save_pretrained=tokenizer_fails),
            {},
        )
    kept = tmp_path / error.value.args[0].split("kept in '")[1].split("'")[0]
    assert (kept / "model.safetensors").stat().st_size > 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # the old run untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", kept.name])


def test_a_second_run_into_the_same_folder_refuses_at_once(tmp_path):
    out = tmp_path / "out"
    with folders.output_lock(out):
        with pytest.raises(UserError, match="is in use by a run that has not ended \\(process \\d+\\)"):
            with folders.output_lock(out):
                pass
        with folders.output_lock(tmp_path / "other"):  # another folder is free
            pass
    with folders.output_lock(out):  # free again once the first run ended
        pass


def test_the_lock_never_opens_a_planted_link_or_a_folder_that_is_not_the_users(tmp_path, monkeypatch):
    monkeypatch.setattr(folders.tempfile, "tempdir", str(tmp_path))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tmp_path / f"lm-recipes-locks-{os.getuid()}"
    folder.symlink_to(tmp_path)  # a link planted at the lock folder's name
    with pytest.raises(UserError, match="is not a folder of yours \\(a link, or another user's\\)"):
        with folders.output_lock(tmp_path / "out"):
            pass
    folder.unlink()
    folder.mkdir(mode=0o755)  # an earlier version's lock folder: made private
    key = hashlib.sha256(str((tmp_path / "out").resolve()).encode()).hexdigest()[:24]
    (folder / f"{key}.lock").symlink_to(victim)  # a link planted at the lock file's name
    with pytest.raises(UserError, match="cannot open the lock file .*; remove it"):
        with folders.output_lock(tmp_path / "out"):
            pass
    assert victim.read_text() == "keep me" and folder.stat().st_mode & 0o777 == 0o700


def test_a_save_cut_off_between_its_renames_is_finished_at_the_next_start(tmp_path):
    # killed after the old run was moved aside and before the new one arrived: the old run goes back
    old = tmp_path / ".out.old-ab12cd34"
    checkpoints.mark_run(old / "run", ["metrics.json"])
    (old / "run" / "metrics.json").write_text("{}")
    (old / "run" / "notes.txt").write_text("mine")
    outputs.remove_stale_staging(tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine" and not old.exists()
    # killed after the new run arrived and before the user's files were carried over: they are carried over now
    (tmp_path / "out").rename(old.with_name(".out.old-zz99yy88").mkdir() or old.with_name(".out.old-zz99yy88") / "run")
    checkpoints.mark_run(tmp_path / "out", ["metrics.json"])
    (tmp_path / "out" / "metrics.json").write_text('{"new": 1}')
    outputs.remove_stale_staging(tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_folders_are_removed_at_the_next_run(tmp_path):
    (tmp_path / ".out.partial-ab12cd34").mkdir()  # a save killed mid-way
    (tmp_path / ".out.partial-ab12cd34" / "model.safetensors").write_text("half")
    (tmp_path / ".out.partial-notours").mkdir()  # not the pattern: left alone
    (tmp_path / ".other.partial-ab12cd34").mkdir()  # another output folder's
    outputs.remove_stale_staging(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-ab12cd34", ".out.partial-notours"]


def test_a_fresh_start_removes_only_an_earlier_runs_checkpoints_and_events(tmp_path):
    (tmp_path / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-best-notes").mkdir()
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host").write_text("")
    (tmp_path / "tensorboard" / "readme.txt").write_text("mine")
    checkpoints.clear_previous_run(tmp_path / "checkpoints", tmp_path / "tensorboard")
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-best-notes"]
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == ["readme.txt"]


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_that_settings_default(tmp_path, tiny_gpt2):
    run = tmp_path / "run"
    started = classification_config(output_dir=str(run))
    write_checkpoint(run / "checkpoints" / "checkpoint-10", tiny_gpt2, started)
    run_config = run / "checkpoints" / "checkpoint-10" / checkpoints.RUN_CONFIG
    older = {k: v for k, v in json.loads(run_config.read_text()).items() if k != "grad_accum"}
    run_config.write_text(json.dumps(older))
    assert resume.resume_point(started.derive(resume="last")).endswith("checkpoint-10")
    with pytest.raises(UserError, match="--grad-accum 2 \\(was 1\\)"):
        resume.resume_point(started.derive(resume="last", grad_accum=2))


def test_max_length_auto_resumes_a_run_that_recorded_the_length_it_chose(tmp_path, tiny_gpt2):
    run = tmp_path / "run"
    chosen = classification_config(output_dir=str(run), max_length=96)  # what the run recorded for `auto`
    write_checkpoint(run / "checkpoints" / "checkpoint-10", tiny_gpt2, chosen)
    assert resume.resume_point(chosen.derive(resume="last", max_length="auto")).endswith("checkpoint-10")
    with pytest.raises(UserError, match="--max-length 128 \\(was 96\\)"):
        resume.resume_point(chosen.derive(resume="last", max_length=128))


def test_lm_loss_auto_resumes_a_checkpoint_that_recorded_chunked(tmp_path, tiny_gpt2):
    from common.tasks.causal_lm import CausalLMConfig

    run = tmp_path / "run"
    older = CausalLMConfig().derive(model="tiny", output_dir=str(run), lm_loss="chunked")
    write_checkpoint(run / "checkpoints" / "checkpoint-10", tiny_gpt2, older)
    assert resume.resume_point(older.derive(resume="last", lm_loss="auto")).endswith("checkpoint-10")
