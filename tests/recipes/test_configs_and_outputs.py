"""configs/*.yaml are valid for their recipe; output folders load with transformers.pipeline and carry a model card."""

import importlib
import json
from pathlib import Path

import pytest

from common.config import cli
from common.run import from_argv
from recipes import causal_lm, gpt2_sentiment
from tests.conftest import TINY_DECODER_RUN

ROOT = Path(__file__).resolve().parents[2]
# every recipe, including those `make new-recipe` adds
RECIPES = {p.stem: importlib.import_module(f"recipes.{p.stem}") for p in sorted((ROOT / "recipes").glob("[!_]*.py"))}
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def recipe_for(config: Path):
    """configs/NAME.yaml and configs/NAME_variant.yaml belong to recipes/NAME.py (the longest matching name)."""
    names = [n for n in RECIPES if config.stem == n or config.stem.startswith(n + "_")]
    return RECIPES[max(names, key=len)]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_parses_for_its_recipe(config):
    recipe = recipe_for(config)
    parsed = cli.parse(recipe.DEFAULTS, ["--config", str(config)])
    assert parsed.output.output_dir.startswith("outputs/")


@pytest.mark.parametrize("name", RECIPES)
def test_the_default_config_equals_the_recipes_defaults(name):
    recipe = RECIPES[name]
    from_file = cli.parse(recipe.DEFAULTS, ["--config", str(ROOT / "configs" / f"{name}.yaml")]).flat()
    plain = recipe.DEFAULTS.flat()
    differs = {k for k in plain if plain[k] != from_file[k]} - {"epochs", "save_steps"}
    assert not differs, (name, differs)


def test_classifier_output_is_pipeline_ready_with_label_names_and_a_model_card(tiny_gpt2, reviews_csv, tmp_path):
    from transformers import pipeline

    out = tmp_path / "out"
    from_argv(
        gpt2_sentiment.main,
        gpt2_sentiment.DEFAULTS,
        [
            "--model",
            str(tiny_gpt2),
            "--train-file",
            str(reviews_csv),
            "--output-dir",
            str(out),
            *TINY_DECODER_RUN,
        ],
    )
    predictions = pipeline("text-classification", model=str(out))(["a joy", "a mess"])
    assert {p["label"] for p in predictions} <= {"neg", "pos"} and all(0 <= p["score"] <= 1 for p in predictions)
    card = (out / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"| accuracy | {metrics['test_accuracy']:.4f} |" in card and "micro" not in card
    assert "# out\n" in card and "(labels: neg, pos)" in card and "Accuracy 95% interval: " in card
    assert "1 epoch, learning rate" in card and "epoch(s)" not in card  # not "1.0000 epoch(s)"
    assert "Every metric, per class and over training" in card
    # the card's snippet runs as written, from where the run was started
    snippet = card.split("```python\n")[1].split("```")[0]
    assert f'pipeline("text-classification", model="{out}")' in snippet
    exec(snippet.replace("print(", "(").replace("Replace this with a text to classify.", "a joy"), {})

    from huggingface_hub import ModelCard

    meta = ModelCard.load(out / "README.md").data
    assert (meta.pipeline_tag, meta.library_name, meta.model_name) == ("text-classification", "transformers", "out")
    assert meta.base_model is None  # a local folder names no hub model
    assert "lm-recipes" in meta.tags and meta.datasets is None  # a file is no hub dataset
    results = {r.metric_type: r.metric_value for r in meta.eval_results}
    assert results["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    assert set(results) == {"accuracy", "macro_f1", "mcc", "roc_auc", "loss"}
    assert {r.dataset_name for r in meta.eval_results} == {"reviews.csv"}


def test_causal_lm_output_is_pipeline_ready(tiny_llama, tmp_path):
    from transformers import pipeline

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small text" for i in range(200)))
    out = tmp_path / "out"
    from_argv(
        causal_lm.main,
        causal_lm.DEFAULTS,
        [
            "--model",
            str(tiny_llama),
            "--train-file",
            str(corpus),
            "--output-dir",
            str(out),
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
        ],
    )
    text = pipeline("text-generation", model=str(out))("line 3", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert text.startswith("line 3") and len(text) > len("line 3")
    card = (out / "README.md").read_text()
    assert f'generate = pipeline("text-generation", model="{out}")' in card

    from huggingface_hub import ModelCard

    meta = ModelCard.load(out / "README.md").data
    assert meta.pipeline_tag == "text-generation"
    assert {r.metric_type for r in meta.eval_results} == {"perplexity", "next_token_accuracy", "loss"}


def test_make_recipes_lists_every_recipe():
    import subprocess
    import sys

    listing = subprocess.run(
        [sys.executable, "-m", "recipes"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for name in RECIPES:
        assert f"recipes/{name}.py" in listing
    assert "Sentiment classification with a decoder language model" in listing


def test_report_to_tensorboard_keeps_event_files_in_the_output_folder(tiny_bert, reviews_csv, tmp_path):
    from recipes import bert_classification

    out = tmp_path / "out"
    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        [
            "--model",
            str(tiny_bert),
            "--train-file",
            str(reviews_csv),
            "--output-dir",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--precision",
            "fp32",
            "--logging-steps",
            "1",
            "--report-to",
            "tensorboard",
        ],
    )
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert "train/loss" in accumulator.Tags()["scalars"] and "eval/accuracy" in accumulator.Tags()["scalars"]


def test_the_slurm_script_is_valid_bash_and_starts_one_torchrun_per_node():
    import subprocess

    script = ROOT / "configs" / "slurm" / "multi_node.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH --ntasks-per-node=1" in text and "srun --kill-on-bad-exit=1 .venv/bin/torchrun" in text
    assert '--nnodes "$SLURM_NNODES"' in text and '"$recipe" "$@"' in text
