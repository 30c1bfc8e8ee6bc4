import pytest
from transformers import AutoTokenizer

from common import assets
from common.errors import UserError


def test_markdown_play_to_text():
    md = "# Hamlet\n\n## ACT I\n\n_Enter BERNARDO_\n\n**BERNARDO**  \nWho's there?  \nStand.\n"
    assert (
        assets.markdown_play_to_text(md) == "Hamlet\n\nACT I\n\n[Enter BERNARDO]\n\nBERNARDO:\nWho's there?\nStand.\n"
    )


def test_embedded_rotten_tomatoes_is_the_real_data():
    frame = assets.load_dataset_frame("embedded:rotten-tomatoes")
    assert list(frame.columns) == ["text", "label"]
    assert frame["label"].value_counts().to_dict() == {"fresh": 7403, "rotten": 5405}


def test_embedded_shakespeare_has_38_plays_as_plain_text():
    frame = assets.load_dataset_frame("embedded:shakespeare")
    assert len(frame) == 38 and "hamlet" in set(frame["title"])
    hamlet = frame.set_index("title").loc["hamlet", "text"]
    assert "BERNARDO:\nWho's there?" in hamlet and "**" not in hamlet


def test_gpt2_tokenizer_folder_is_the_real_gpt2_bpe():
    tokenizer = AutoTokenizer.from_pretrained(assets.gpt2_tokenizer_dir())
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert len(tokenizer) == 50257 and tokenizer.eos_token_id == 50256


def test_embedded_smollm2_is_prepared_once_as_plain_safetensors():
    folder = assets.model_dir("embedded:smollm2-135m")
    assert (folder / "model.safetensors").stat().st_size > 500_000_000
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert assets.model_dir("embedded:smollm2-135m") == folder  # second call reuses it


def test_unknown_embedded_names_list_the_choices():
    with pytest.raises(UserError, match="embedded:rotten-tomatoes, embedded:shakespeare"):
        assets.load_dataset_frame("embedded:imdb")
