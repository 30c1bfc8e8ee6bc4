"""Shared fixtures: tiny random-weight models with the real tokenizers, small data files. Never the network."""

import os

# Before transformers/datasets are imported anywhere: fail fast instead of retrying the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from common import assets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

POSITIVE = [
    "a joy from start to finish",
    "warm, funny and wise",
    "the best film of the year",
    "moving and beautifully acted",
    "a delightful surprise",
    "smart, sharp and touching",
    "an absolute triumph",
    "charming and heartfelt",
    "gorgeous to look at and a pleasure to watch",
    "brilliant performances all round",
    "funny, fresh, alive",
    "a small masterpiece",
]
NEGATIVE = [
    "a tedious mess",
    "dull, flat and far too long",
    "the worst film of the year",
    "lifeless and badly acted",
    "a tiresome chore",
    "clumsy, loud and empty",
    "an utter failure",
    "cynical and joyless",
    "ugly to look at and a pain to sit through",
    "wooden performances all round",
    "stale, limp, dead",
    "a big misfire",
]


@pytest.fixture(scope="session")
def reviews_frame():
    return pd.DataFrame({"text": POSITIVE + NEGATIVE, "label": ["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE)})


@pytest.fixture()
def reviews_csv(tmp_path, reviews_frame):
    path = tmp_path / "reviews.csv"
    reviews_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(assets.gpt2_tokenizer_dir())


# a few steps of the decoder classifier on a tiny model: what the tests that need a trained run pass it
TINY_DECODER_RUN = ["--epochs", "1", "--batch-size", "4", "--freeze-layers", "1", "--precision", "fp32"]


def cut_copy(model_folder, to: Path, parts: int) -> Path:
    """A copy of a model folder whose model.safetensors keeps only its first 1/`parts` (a copy cut short)."""
    shutil.copytree(model_folder, to)
    weights = (to / "model.safetensors").read_bytes()
    (to / "model.safetensors").write_bytes(weights[: len(weights) // parts])
    return to


def save_tiny_model(factory, name, tokenizer, model_class, config):
    """A folder holding the real tokenizer and a small model with seeded random weights, as from_pretrained reads it."""
    folder = factory.mktemp(name)
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory, gpt2_tokenizer):
    """A GPT-2-format folder: the real GPT-2 tokenizer and a 2-layer random-weight GPT2 model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=128, vocab_size=len(gpt2_tokenizer))
    return save_tiny_model(tmp_path_factory, "tiny-gpt2", gpt2_tokenizer, GPT2LMHeadModel, config)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A BERT-format folder: the real MiniLM (uncased WordPiece) tokenizer and a 2-layer random-weight BERT."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(assets.package_dir("minilm") / "model")
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        vocab_size=tokenizer.vocab_size,
    )
    return save_tiny_model(tmp_path_factory, "tiny-bert", tokenizer, BertForMaskedLM, config)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A Llama-format folder: the real SmolLM2 tokenizer and a 2-layer random-weight Llama."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(assets.model_dir("embedded:smollm2-135m"))
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    return save_tiny_model(tmp_path_factory, "tiny-llama", tokenizer, LlamaForCausalLM, config)


def run_recipe(recipe: str, *args, cwd=None) -> subprocess.CompletedProcess:
    """Run a recipe as a user would (new process), offline; returns the finished process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=600,
    )


def classification_config(**settings):
    """A classification run configuration with the given settings (flat names, as on the command line)."""
    from common.tasks.classification import ClassificationConfig

    return ClassificationConfig().derive(**{"model": "tiny", "output_dir": "unused", **settings})
