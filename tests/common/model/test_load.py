import pytest
import torch

from common.config import ModelConfig
from common.errors import UserError
from common.model import load as modeling


def test_gpt2_gets_end_of_text_as_pad_token(tiny_gpt2):
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(tiny_gpt2)))
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == 50256


def test_classifier_stores_label_names_and_pad_id(tiny_gpt2, tmp_path):
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(tiny_gpt2)))
    model = modeling.load_classifier(ModelConfig(model=str(tiny_gpt2)), ["neg", "neu", "pos"], tokenizer)
    assert model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert model.config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert model.config.pad_token_id == 50256
    model.save_pretrained(tmp_path)
    assert '"pos": 2' in (tmp_path / "config.json").read_text()


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_decoder_classifier_pools_last_real_token_in_padded_batches(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(folder))
    model = modeling.load_classifier(ModelConfig(model=folder), ["a", "b"], tokenizer).eval()
    texts = ["short one", "a rather longer sentence that forces padding of the first"]
    with torch.no_grad():
        batched = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    assert torch.allclose(batched[0], alone[0], atol=1e-5)  # padding did not change the first example's logits


def test_unknown_model_and_non_model_folder_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="could not load model 'no-such-model-xyz'"):
        modeling.load_config("no-such-model-xyz")
    with pytest.raises(UserError, match="folder without config.json"):
        modeling.load_config(str(tmp_path))
    with pytest.raises(UserError, match="unknown embedded model 'embedded:nope'"):
        modeling.load_config("embedded:nope")


def test_tokenizer_from_another_model_is_refused(tiny_bert, tiny_gpt2):
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(tiny_gpt2)))  # 50,257 tokens vs BERT's 30,522
    with pytest.raises(UserError, match="do not belong together"):
        modeling.load_classifier(ModelConfig(model=str(tiny_bert)), ["a", "b"], tokenizer)


def test_generate_is_seeded(tiny_llama):
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(tiny_llama)))
    model = modeling.load_causal_lm(ModelConfig(model=str(tiny_llama)), tokenizer)
    first = modeling.generate(model, tokenizer, "ROMEO:", 8, seed=1)
    assert first.startswith("ROMEO:") and first == modeling.generate(model, tokenizer, "ROMEO:", 8, seed=1)


def test_attention_choice():
    assert modeling.attention_implementation("sdpa", 32) == "sdpa"
    assert modeling.attention_implementation("eager", 4096) == "eager"
    expected_short = None if torch.cuda.is_available() else "eager"
    assert modeling.attention_implementation("auto", modeling.EAGER_ATTENTION_UP_TO) == expected_short
    assert (
        modeling.attention_implementation("auto", modeling.EAGER_ATTENTION_UP_TO + 1) is None
    )  # transformers' default
    assert modeling.attention_implementation("auto", None) is None


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2"])
def test_a_classifiers_first_forward_leaves_its_config_as_loaded(fixture, request):
    """transformers sets config.problem_type at the first call with labels when it is unset; under --compile that
    change of the config forces a second compile of the whole model."""
    folder = str(request.getfixturevalue(fixture))
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(folder))
    model = modeling.load_classifier(ModelConfig(model=folder), ["neg", "pos"], tokenizer)
    before = model.config.to_dict()
    model(**tokenizer(["a film"], return_tensors="pt"), labels=torch.tensor([1]))
    assert model.config.to_dict() == before and before["problem_type"] == "single_label_classification"


def test_a_new_head_is_one_line_not_transformers_load_report(tiny_bert, capfd, caplog):
    """The checkpoint (BertForMaskedLM) has no classifier and an unused pretraining head: both expected, each said
    in one plain line, without transformers' table of colour-coded MISSING/UNEXPECTED rows."""
    tokenizer = modeling.load_tokenizer(str(tiny_bert))
    with caplog.at_level("INFO"):
        modeling.load_classifier(ModelConfig(model=str(tiny_bert)), ["neg", "pos"], tokenizer)
    printed = capfd.readouterr()
    assert "LOAD REPORT" not in printed.out + printed.err and "\x1b[" not in printed.out + printed.err
    assert "BertForSequenceClassification: new bert.pooler.dense, classifier, randomly initialized" in caplog.text
    assert "not used from the checkpoint: cls.predictions" in caplog.text
    assert "start random" not in caplog.text  # nothing of the body is missing
