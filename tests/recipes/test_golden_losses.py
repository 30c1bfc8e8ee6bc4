"""Golden losses: each recipe's first training losses on a tiny seeded random-weight model and fixed data, pinned.

The equality tests compare two of our own ways (packed and unpacked, resumed and uninterrupted); nothing else pins
the absolute path. A change to data order, masking, padding, loss scaling or precision that moves these numbers
shows here, in review, and not first to users. When a change is meant to move them, regenerate and say why in the
commit:

    GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/recipes/test_golden_losses.py -s   # prints the new lists

Recorded on a 2-core x86_64 CPU, fp32, torch 2.13, transformers 5.23 (pinned in requirements).
"""

import json
import os

import pytest

from common.run import from_argv
from recipes import bert_classification, causal_lm, chat_sft, gpt2_sentiment

STEPS = 10  # at learning rates high enough that the tiny models learn in them: context, masks and order matter
FAST = ["--precision", "fp32", "--logging-steps", "1", "--trainer-arg", f"max_steps={STEPS}"]
WORDS = ["warm", "dull", "bright", "flat", "joy", "mess", "keen", "limp", "rich", "thin", "bold", "weak"]

GOLDEN = {
    "gpt2_sentiment": [0.649511, 0.632243, 0.698921, 0.682041, 0.625448, 0.734604, 0.572274, 0.608718, 0.64641, 0.562943],
    "bert_classification": [0.694207, 0.695212, 0.693574, 0.694673, 0.689363, 0.690358, 0.686977, 0.692427, 0.7141, 0.695373],
    "causal_lm": [10.806953, 10.806634, 10.437722, 10.013824, 9.686457, 9.35015, 9.118774, 8.90095, 8.685939, 8.556643],
    "chat_sft": [10.849916, 10.834538, 10.510235, 10.009028, 9.602207, 9.363585, 9.121908, 8.894505, 8.631844, 8.574729],
}  # fmt: skip


def labelled(path):
    lines = ["text,label"]
    for i in range(80):
        words = [WORDS[(i * k + k) % len(WORDS)] for k in (1, 3, 5, 7)]
        lines.append(f"{' '.join(words)} film {i},{'pos' if WORDS.index(words[0]) % 2 == 0 else 'neg'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def corpus(path):
    """Short documents, several to a block: document packing keeps them apart (the golden losses depend on it)."""
    texts = [f"line {i}: the {WORDS[i % 12]} fox and the {WORDS[(i * 5) % 12]} dog" for i in range(400)]
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    return path


def conversations(path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": str(a + b)},
            ]
        }
        for a in range(10)
        for b in range(8)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


CASES = {
    "gpt2_sentiment": (
        gpt2_sentiment,
        "tiny_gpt2",
        labelled,
        ["--batch-size", "4", "--lr", "1e-3", "--freeze-layers", "1", "--baseline", "none"],
    ),
    "bert_classification": (
        bert_classification,
        "tiny_bert",
        labelled,
        ["--batch-size", "4", "--lr", "1e-3", "--max-length", "16", "--baseline", "none"],
    ),
    "causal_lm": (causal_lm, "tiny_llama", corpus, ["--batch-size", "4", "--block-size", "32", "--lr", "1e-2"]),
    "chat_sft": (chat_sft, "tiny_llama", conversations, ["--batch-size", "4", "--lr", "1e-2", "--max-new-tokens", "4"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_first_losses_are_the_recorded_ones(name, tmp_path, request):
    recipe, model, make_data, flags = CASES[name]
    data = make_data(tmp_path / ("data.csv" if make_data is labelled else "data.jsonl"))
    out = tmp_path / "out"
    words = ["--model", request.getfixturevalue(model), "--train-file", data, "--output-dir", out, *flags, *FAST]
    from_argv(recipe.main, recipe.DEFAULTS, words)
    history = json.loads((out / "log_history.json").read_text())
    losses = [round(h["loss"], 6) for h in history if "loss" in h][:STEPS]
    if os.environ.get("GOLDEN_UPDATE"):
        print(f'\n    "{name}": {losses},')
        return
    assert len(losses) == STEPS
    assert losses == pytest.approx(GOLDEN[name], rel=1e-4, abs=1e-5), losses
