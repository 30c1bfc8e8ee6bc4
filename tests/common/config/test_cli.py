"""The command line generated from the configuration: flags, --help, --config files."""

import json

import pytest

from common.config import cli
from recipes import bert_classification, causal_lm, gpt2_sentiment


def parse(recipe, *argv):
    return cli.parse(recipe.DEFAULTS, [str(a) for a in argv])


def test_no_flags_gives_the_recipes_defaults():
    for recipe in (bert_classification, gpt2_sentiment, causal_lm):
        assert parse(recipe) == recipe.DEFAULTS


def test_flags_become_typed_settings():
    config = parse(
        bert_classification,
        "--lr",
        "3e-5",
        "--text-column",
        "q",
        "a",
        "--freeze-embeddings",
        "--gradual-unfreeze",
        "epoch",
        "--resume",
    )
    assert config.training.lr == 3e-5 and config.data.text_column == ["q", "a"]
    assert config.techniques.freeze_embeddings and config.techniques.gradual_unfreeze == "epoch"
    assert config.output.resume == "last"
    assert not parse(gpt2_sentiment, "--no-freeze-embeddings").techniques.freeze_embeddings


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "nan"], "must be a finite number"),
        (["--gradual-unfreeze", "often"], "expected a whole number"),
        (["--batch", "8"], "unrecognized arguments: --batch"),  # no silent prefix abbreviations
        (["--precision", "fp8"], "invalid choice"),
        (["--lora-r", "8", "--layer-lr-decay", "0.8"], "--lora-r trains adapters, not layers"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(bert_classification, *argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_help_shows_each_group_and_the_recipes_own_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.parse(gpt2_sentiment.DEFAULTS, ["--help"], gpt2_sentiment.__doc__)
    text = capsys.readouterr().out
    for title in ("model:", "data (files win", "training:", "techniques (see", "output:", "several runs"):
        assert title in text
    assert "embedded:smollm2-135m" in text and "--focal-gamma" in text and "--block-size" not in text


def test_a_config_file_is_read_and_the_command_line_wins(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 5.0e-5\nbatch_size: 8\ntext_column: [q, a]\nfreeze_embeddings: true\nmerge_lora: false\n")
    config = parse(bert_classification, "--config", path, "--batch-size", "4")
    assert (config.training.lr, config.training.batch_size, config.data.text_column) == (5e-5, 4, ["q", "a"])
    assert config.techniques.freeze_embeddings


def test_a_run_config_repeats_the_run_but_never_its_overwrite_or_resume(tmp_path):
    first = parse(causal_lm, "--lr", "3e-4", "--block-size", "64", "--overwrite")
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps(first.flat()))
    again = parse(causal_lm, "--config", path)
    assert again.training.lr == 3e-4 and again.data.block_size == 64
    assert not again.output.overwrite  # an action, not a setting: never taken from a file


@pytest.mark.parametrize(
    "text, message",
    [
        ("learn_rate: 1.0e-4\n", "unknown keys: learn_rate"),
        ("- lr\n", "must map names to values; it holds a list"),
        ("lr: [\n", "could not be read as YAML"),
        ("task: causal_lm\n", "is for a causal_lm run"),
        ("lr: -1\n", "argument --lr: must be greater than 0"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, text, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit):
        parse(bert_classification, "--config", path)
    assert message in capsys.readouterr().err


def test_the_hf_examples_spellings_are_read_as_ours(tmp_path):
    config = parse(
        bert_classification,
        "--learning_rate", "1e-3", "--num_train_epochs=3", "--max_train_samples", "50",
        "--gradient_accumulation_steps", "2", "--model_name_or_path", "bert-base-uncased", "--output_dir", "o",
        "--max_seq_length", "128", "--warmup_ratio", "0.05", "--freeze_embeddings",
    )  # fmt: skip
    assert (config.training.lr, config.training.epochs, config.training.grad_accum) == (1e-3, 3, 2)
    assert (config.data.max_train_samples, config.data.max_length, config.training.warmup) == (50, 128, 0.05)
    assert config.model.model == "bert-base-uncased" and config.output.output_dir == "o"
    assert config.techniques.freeze_embeddings
    assert parse(causal_lm, "--block_size", "64").data.block_size == 64
    file = tmp_path / "hf.yaml"
    file.write_text("learning_rate: 2.0e-5\nnum_train_epochs: 4\n")
    from_file = parse(bert_classification, "--config", file)
    assert (from_file.training.lr, from_file.training.epochs) == (2e-5, 4)


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["--per_device_train_batch_size", "8"], "use --batch-size (examples per optimizer step, over all processes)"),
        (["--bf16"], "use --precision bf16"),
        (["--batch", "8"], "--batch: did you mean --batch-size?"),  # no prefix abbreviations
        (["--epoch", "2"], "--epoch: did you mean --epochs?"),
        (["--max-length", "64"], "--max-length: this recipe's flag for it is --block-size"),
    ],
)
def test_an_unknown_flag_is_answered_with_the_flag_it_likely_meant(argv, hint, capsys):
    recipe = causal_lm if argv[0] == "--max-length" else bert_classification
    with pytest.raises(SystemExit) as stop:
        parse(recipe, *argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments" in err
    assert hint in err


def test_trainer_args_reach_training_arguments_from_the_command_line_and_a_config_block(tmp_path):
    from common.train import training_arguments

    file = tmp_path / "run.yaml"
    file.write_text(
        "scheduler: cosine\ntrainer:\n  optim: adafactor\n  max_grad_norm: 0.5\n  lr_scheduler_kwargs: {num_cycles: 2}\n"
    )
    config = parse(
        bert_classification, "--config", file, "--trainer-arg", "max_grad_norm=0.25", "--trainer-arg", "adam_beta2=0.98"
    )
    targs = training_arguments(config, tmp_path / "work")
    assert (targs.optim, targs.max_grad_norm, targs.adam_beta2) == ("adafactor", 0.25, 0.98)  # the command line wins
    assert targs.lr_scheduler_kwargs == {"num_cycles": 2}
    assert not targs.activation_checkpointing
    assert training_arguments(parse(bert_classification, "--gradient-checkpointing"), tmp_path).activation_checkpointing
    again = tmp_path / "again.json"  # run_config.json holds the words, and reads back the same
    again.write_text(json.dumps(config.flat()))
    assert parse(bert_classification, "--config", again).training.trainer_arg == config.training.trainer_arg


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trainer-arg", "optimm=adafactor"], "optimm: TrainingArguments has no such field; did you mean optim?"),
        (["--trainer-arg", "learning_rate=1e-3"], "learning_rate: use --lr, which sets it for the recipes"),
        (["--trainer-arg", "optim"], "takes KEY=VALUE words such as optim=adafactor, got 'optim'"),
        (["--trainer-arg", "optim=nonsense"], "nonsense is not a valid OptimizerNames"),
        (["--optim", "adafactor"], "--optim: pass it as --trainer-arg optim=VALUE"),
        # the hub goes through --push-to-hub, which checks the login and the name before training
        (["--trainer-arg", "push_to_hub=true"], "push_to_hub: use --push-to-hub USER/NAME"),
        (["--trainer-arg", "hub_model_id=me/x"], "hub_model_id: use --push-to-hub USER/NAME"),
        # what fails only once training or evaluation starts is refused now
        (["--trainer-arg", "prediction_loss_only=true"], "prediction_loss_only: the recipes' evaluation needs"),
        (["--trainer-arg", 'label_names=["x"]'], "label_names: the recipes name the label column themselves"),
        (["--trainer-arg", "optim=adamw_bnb_8bit"], "You need to install `bitsandbytes`"),
        (
            ["--trainer-arg", 'lr_scheduler_kwargs={"num_cycles": 2}'],
            "lr_scheduler_kwargs: the linear schedule takes no num_cycles (it takes none); choose a --scheduler",
        ),
    ],
)
def test_a_bad_trainer_arg_is_one_line_before_anything_loads(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        parse(bert_classification, *argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err


def test_a_trainer_block_that_is_not_a_mapping_is_refused(tmp_path, capsys):
    file = tmp_path / "run.yaml"
    file.write_text("trainer: adafactor\n")
    with pytest.raises(SystemExit):
        parse(bert_classification, "--config", file)
    assert "trainer: must map TrainingArguments fields to values" in capsys.readouterr().err


HELP_PROBE = """
import runpy, sys, time
sys.argv = [sys.argv[1], "--help"]
started = time.perf_counter()
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
print(f"{time.perf_counter() - started:.3f}", "torch" in sys.modules, "transformers" in sys.modules)
"""


@pytest.mark.parametrize("recipe", ["bert_classification", "gpt2_sentiment", "causal_lm"])
def test_help_answers_from_the_defaults_before_torch_loads(recipe):
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, f"recipes/{recipe}.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    *help_text, last = probe.stdout.strip().splitlines()
    seconds, torch_loaded, transformers_loaded = last.split()
    assert (torch_loaded, transformers_loaded) == ("False", "False")  # what used to take 5-10 s of --help
    assert float(seconds) < 1.5  # 0.05 s here; loading torch alone takes about 1 s
    assert any("--trainer-arg KEY=VALUE" in line for line in help_text) and "(default: " in "\n".join(help_text)


def test_a_config_files_relative_paths_are_read_from_its_folder_unless_they_exist_from_here(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tickets.csv").write_text("text,label\na,b\n")
    (folder / "run.yaml").write_text("train_file: tickets.csv\ntest_file: elsewhere.csv\n")
    monkeypatch.chdir(tmp_path)  # the run starts one folder above the config
    config = parse(bert_classification, "--config", "experiments/run.yaml")
    assert config.data.train_file == "experiments/tickets.csv"  # beside the config, said from where the run starts
    assert config.data.test_file == "elsewhere.csv"  # found nowhere: left as written, for the error to name
    (tmp_path / "tickets.csv").write_text("text,label\nc,d\n")  # one where the run starts wins
    assert parse(bert_classification, "--config", "experiments/run.yaml").data.train_file == "tickets.csv"


def test_every_setting_that_names_a_file_is_read_from_the_config_files_folder(tmp_path, monkeypatch):
    from recipes import chat_sft

    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "chat.jsonl").write_text('{"prompt": "a", "response": "b"}\n')
    (folder / "mine.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    (folder / "chat.yaml").write_text("train_file: chat.jsonl\nchat_template: mine.jinja\n")
    monkeypatch.chdir(tmp_path)
    config = parse(chat_sft, "--config", "experiments/chat.yaml")  # the template was read from here before
    assert (config.data.train_file, config.data.chat_template) == ("experiments/chat.jsonl", "experiments/mine.jinja")


def test_a_config_of_only_comments_changes_nothing(tmp_path):
    (tmp_path / "variants.yaml").write_text("# epochs: 3\n# lr: 5.0e-5\n")
    assert parse(bert_classification, "--config", tmp_path / "variants.yaml") == bert_classification.DEFAULTS


def test_a_config_file_never_lets_a_model_run_code_nor_asks_for_an_action(tmp_path):
    file = tmp_path / "given.yaml"  # a file someone sent: what runs code is asked for on the command line only
    file.write_text("trust_remote_code: true\nallow_pickle: true\noverwrite: true\nresume: last\nlr: 1e-4\n")
    config = parse(bert_classification, "--config", file)
    assert not config.model.trust_remote_code and not config.model.allow_pickle
    assert not config.output.overwrite and config.output.resume is None and config.training.lr == 1e-4
    assert parse(bert_classification, "--config", file, "--trust-remote-code").model.trust_remote_code
    negative = tmp_path / "negative.yaml"  # a value starting with '-' is still a value where it is a number
    negative.write_text("text_column: [text, '-1']\n")
    assert parse(bert_classification, "--config", negative).data.text_column == ["text", "-1"]
