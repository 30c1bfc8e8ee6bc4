import torch

from common.config import ModelConfig
from common.model import load as modeling
from common.model import lora
from common.run import output as outputs
from tests.conftest import classification_config


def trained_lora_classifier(folder, tmp_path):
    """A tiny classifier with LoRA adapters, the adapters and head moved away from their initial values."""
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(folder)))
    model = modeling.load_classifier(ModelConfig(model=str(folder)), ["neg", "pos"], tokenizer)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    model = lora.add_lora(model, r=4, alpha=8, dropout=0.0)
    with torch.no_grad():  # stand-in for training: LoRA B starts at zero, which would hide a lost adapter
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    return tokenizer, model, base


def test_lora_save_and_reload_gives_identical_logits_and_leaves_base_weights_alone(tiny_llama, tiny_bert, tmp_path):
    for folder in (tiny_llama, tiny_bert):
        tokenizer, model, base = trained_lora_classifier(folder, tmp_path)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
        inputs = tokenizer(["a fine film", "dull and flat, far too long"], padding=True, return_tensors="pt")
        model.eval()
        with torch.no_grad():
            logits = model(**inputs).logits
        out = outputs.save_run(
            classification_config(output_dir=str(tmp_path / folder.name), lora_r=4), model, tokenizer, {}
        )
        assert (out / "adapter_model.safetensors").exists() and not list(out.glob("*.bin"))
        reloaded = lora.load(out)
        with torch.no_grad():
            assert torch.equal(reloaded(**inputs).logits, logits), folder.name
        assert reloaded.config.id2label == {0: "neg", 1: "pos"}
        for name, param in reloaded.get_base_model().named_parameters():  # base weights as loaded
            plain = name.replace(".base_layer", "")
            if (
                plain in base
                and "lora_" not in name
                and "modules_to_save" not in name
                and "original_module" not in name
            ):
                assert torch.equal(param, base[plain]), name


def test_merged_lora_is_a_plain_model_with_the_same_predictions(tiny_llama, tmp_path):
    from transformers import AutoModelForSequenceClassification

    tokenizer, model, _ = trained_lora_classifier(tiny_llama, tmp_path)
    inputs = tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    config = classification_config(output_dir=str(tmp_path / "merged"), lora_r=4, merge_lora=True)
    out = outputs.save_run(config, model, tokenizer, {})  # --merge-lora: save_run merges
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.allclose(plain(**inputs).logits, logits, atol=1e-5)
