"""The causal-LM recipe end to end on a tiny random-weight Llama with the real SmolLM2 tokenizer."""

import json

from common.run import from_argv
from recipes import causal_lm

TEXT = "\n".join(f"LINE {i}: the quality of mercy is not strained, it droppeth as the gentle rain." for i in range(120))


def test_causal_lm_on_a_folder_of_txt_reports_perplexity_before_and_after(tiny_llama, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT)
    (corpus / "b.txt").write_text(TEXT.upper())
    out = tmp_path / "out"
    from_argv(
        causal_lm.main,
        causal_lm.DEFAULTS,
        [
            "--model",
            str(tiny_llama),
            "--train-file",
            str(corpus),
            "--block-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "3e-3",
            "--precision",
            "fp32",
            "--output-dir",
            str(out),
        ],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_perplexity"] < metrics["test_perplexity_before"]  # even a tiny model learns this repetition
    assert 0 <= metrics["test_next_token_accuracy"] <= 1
    printed = capsys.readouterr().out
    assert "Sample from 'ROMEO:\\n'" in printed and "test_perplexity_before" in printed
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
