"""--max-length auto and the hint for an explicit length that cuts most texts (common.data.lengths)."""

import pandas as pd
import pytest

from common.data.lengths import fit_max_length, token_lengths
from tests.conftest import classification_config


def texts(words_each: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"text": [" ".join(["word"] * n) for n in words_each], "premise": ["a b c"] * len(words_each)})


def fitted(frame, tokenizer, positions=1024, **settings) -> int:
    return fit_max_length(classification_config(**settings).data, frame, tokenizer, positions)


def test_token_lengths_count_each_text_and_a_pair_together(gpt2_tokenizer):
    frame = texts([3, 10])
    assert token_lengths(frame, gpt2_tokenizer, ["text"], up_to=64).tolist() == [3, 10]  # " word" is one token
    assert token_lengths(frame, gpt2_tokenizer, ["text", "premise"], up_to=64).tolist() == [6, 13]
    assert token_lengths(texts([500]), gpt2_tokenizer, ["text"], up_to=64).tolist() == [65]  # counted to the limit


def test_auto_keeps_199_in_200_whole_rounded_up_to_8(gpt2_tokenizer, caplog):
    # 400 texts: 399 of 20 words and one of 300, which is in the 0.5% auto may cut
    frame = texts([20] * 399 + [300])
    with caplog.at_level("INFO"):
        assert fitted(frame, gpt2_tokenizer, max_length="auto") == 24
    assert "--max-length auto: 24 tokens, which keeps 99.8% of the training texts whole" in caplog.text
    assert fitted(texts([20] * 390 + [41] * 10), gpt2_tokenizer, max_length="auto") == 48  # 2.5% long: covered


def test_auto_stays_within_what_the_model_reads_and_says_what_is_cut(gpt2_tokenizer, caplog):
    frame = texts([200] * 10 + [20] * 10)
    with caplog.at_level("WARNING"):
        assert fitted(frame, gpt2_tokenizer, positions=128, max_length="auto") == 128
    assert (
        "--max-length auto: 128 tokens, the most this model reads; 50% of the training texts fit whole" in caplog.text
    )


def test_auto_takes_at_most_512_tokens_on_a_gpu_and_256_on_a_cpu_saying_why(gpt2_tokenizer, caplog, monkeypatch):
    from common.data import lengths

    monkeypatch.setattr(lengths, "on_gpu", lambda: True)
    assert fitted(texts([900] * 4), gpt2_tokenizer, positions=1024, max_length="auto") == 512  # attention's cost
    monkeypatch.setattr(lengths, "on_gpu", lambda: False)
    with caplog.at_level("WARNING"):
        assert fitted(texts([900] * 4), gpt2_tokenizer, positions=1024, max_length="auto") == 256
    assert "256 tokens, the most auto takes on a CPU (512 cost 2.8x the time and scored lower" in caplog.text
    assert "--long-text head-tail keeps their endings too" in caplog.text
    assert fitted(texts([200] * 4), gpt2_tokenizer, positions=1024, max_length="auto") == 200  # texts that fit: whole
    caplog.clear()
    with caplog.at_level("WARNING"):  # an explicit length's hint names the whole length, though auto would not take it
        assert fitted(texts([300] * 4), gpt2_tokenizer, positions=1024, max_length=64) == 64
    assert "--max-length 304 keeps 100% whole; --long-text head-tail" in caplog.text  # 300 rounded up to 8


@pytest.mark.parametrize("long_share, warned", [(0.2, False), (0.25, True)])
def test_an_explicit_length_that_cuts_over_a_fifth_gets_one_line_with_the_fix(
    gpt2_tokenizer, caplog, long_share, warned
):
    n_long = int(100 * long_share)
    with caplog.at_level("WARNING"):
        assert fitted(texts([100] * n_long + [10] * (100 - n_long)), gpt2_tokenizer, max_length=64) == 64
    line = (
        f"--max-length 64 cuts {n_long} of 100 training texts ({n_long}%); --max-length 104 (or auto) keeps 100% whole"
    )
    assert (line in caplog.text) == warned


@pytest.mark.parametrize("recipe", ["bert_classification", "gpt2_sentiment"])
def test_auto_takes_64_tokens_for_the_embedded_snippets_as_the_fixed_default_did(recipe):
    import importlib

    from benchmarks.throughput import SNIPPET_LENGTH
    from common.data import classification_splits
    from common.model import load_tokenizer, model_positions

    defaults = importlib.import_module(f"recipes.{recipe}").DEFAULTS
    splits, _ = classification_splits(defaults.data, defaults.training.seed)
    tokenizer = load_tokenizer(defaults.model.model)
    chosen = fit_max_length(defaults.data, splits["train"], tokenizer, model_positions(defaults.model))
    assert chosen == SNIPPET_LENGTH == 64  # the README's recorded default results were measured at 64


def test_with_long_text_windows_nothing_is_cut_and_nothing_is_said(gpt2_tokenizer, caplog):
    frame = texts([100] * 50)
    with caplog.at_level("WARNING"):
        assert fitted(frame, gpt2_tokenizer, max_length=64, long_text="sliding-window") == 64
        assert fitted(frame, gpt2_tokenizer, positions=64, max_length="auto", long_text="head-tail") == 64
    assert not caplog.records
