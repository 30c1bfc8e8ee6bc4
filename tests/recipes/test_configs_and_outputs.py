"""configs/*.yaml are valid for their recipe; output folders load with transformers.pipeline and carry a model card."""

import json
from pathlib import Path

import pytest

from common import cli
from recipes import bert_classification, causal_lm, gpt2_sentiment

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"gpt2_sentiment": gpt2_sentiment, "bert_classification": bert_classification, "causal_lm": causal_lm}
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def recipe_for(config: Path):
    return next(module for name, module in RECIPES.items() if config.stem.startswith(name))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_parses_for_its_recipe(config):
    recipe = recipe_for(config)
    parser = cli.classification_parser if recipe is not causal_lm else cli.causal_lm_parser
    args = cli.parse(parser(recipe.__doc__, **recipe.DEFAULTS), ["--config", str(config)])
    assert args.output_dir.startswith("outputs/")


def test_the_default_configs_equal_the_recipes_defaults():
    for name, recipe in RECIPES.items():
        parser = cli.classification_parser if recipe is not causal_lm else cli.causal_lm_parser
        from_file = cli.parse(parser(recipe.__doc__, **recipe.DEFAULTS), ["--config", str(ROOT / "configs" / f"{name}.yaml")])
        plain = cli.parse(parser(recipe.__doc__, **recipe.DEFAULTS), [])
        differs = {k for k in vars(plain) if getattr(plain, k) != getattr(from_file, k)} - {"config", "epochs", "save_steps"}
        assert not differs, (name, differs)


def test_classifier_output_is_pipeline_ready_with_label_names_and_a_model_card(tiny_gpt2, reviews_csv, tmp_path):
    from transformers import pipeline

    out = tmp_path / "out"
    gpt2_sentiment.main(["--model", str(tiny_gpt2), "--train-file", str(reviews_csv), "--output-dir", str(out),
                         "--epochs", "1", "--batch-size", "4", "--freeze-layers", "1", "--precision", "fp32"])
    predictions = pipeline("text-classification", model=str(out))(["a joy", "a mess"])
    assert {p["label"] for p in predictions} <= {"neg", "pos"} and all(0 <= p["score"] <= 1 for p in predictions)
    card = (out / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['test_accuracy']:.4f}" in card and 'pipeline("text-classification"' in card and str(reviews_csv) in card


def test_causal_lm_output_is_pipeline_ready(tiny_llama, tmp_path):
    from transformers import pipeline

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small text" for i in range(200)))
    out = tmp_path / "out"
    causal_lm.main(["--model", str(tiny_llama), "--train-file", str(corpus), "--output-dir", str(out), "--block-size", "32",
                    "--batch-size", "4", "--epochs", "1", "--precision", "fp32", "--max-train-samples", "8"])
    text = pipeline("text-generation", model=str(out))("line 3", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert text.startswith("line 3") and len(text) > len("line 3")
    assert 'pipeline("text-generation"' in (out / "README.md").read_text()


def test_make_recipes_lists_every_recipe():
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "recipes"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in RECIPES:
        assert f"recipes/{name}.py" in listing
    assert "Sentiment classification with a decoder language model" in listing
