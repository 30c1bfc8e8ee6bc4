import pytest
import torch
from transformers import TrainingArguments

from common.config import ClassificationTechniques, ModelConfig, Techniques
from common.data import tokens as tokenization
from common.errors import UserError
from common.model import adapt, layers
from common.model import load as modeling
from common.tasks.classification import ClassificationConfig
from common.train import RecipeTrainer, technique_hooks

TEXTS = ["a joy", "dull and flat", "warm, funny and wise", "a tedious mess", "moving", "lifeless"] * 4


def classifier(folder):
    tokenizer = modeling.pad_with_end_of_text(modeling.load_tokenizer(str(folder)))
    return tokenizer, modeling.load_classifier(ModelConfig(model=str(folder)), ["a", "b"], tokenizer)


def train(model, tokenizer, tmp_path, steps, callbacks=(), lr=1e-2, **technique):
    """A few real Trainer steps of RecipeTrainer on a tiny batch set (fp32, no eval), with the technique settings
    given hooked in as the recipes do (common.train.technique_hooks)."""
    from datasets import Dataset

    encoded = tokenizer(TEXTS, truncation=True, max_length=16)
    dataset = Dataset.from_dict({**encoded, "labels": [i % 2 for i in range(len(TEXTS))]})
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=lr,
        lr_scheduler_type="constant",
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    config = ClassificationConfig(techniques=ClassificationTechniques(**technique))
    hooks = technique_hooks(config.techniques, model, dataset["labels"], ["a", "b"])
    hooks["callbacks"] += list(callbacks)
    trainer = RecipeTrainer(
        config=config,
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=tokenization.padding_collator(tokenizer),
        **hooks,
    )
    trainer.train()
    return trainer


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_freeze_bottom_layers_is_architecture_agnostic(tiny_gpt2, tiny_bert, tiny_llama):
    for folder, embedding in [
        (tiny_gpt2, "transformer.wte"),
        (tiny_bert, "bert.embeddings"),
        (tiny_llama, "model.embed_tokens"),
    ]:
        _, model = classifier(folder)
        layers.freeze_bottom_layers(model, 1)
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        assert any(n.startswith(embedding) for n in frozen), folder
        blocks = layers.transformer_blocks(model)
        assert not any(p.requires_grad for p in blocks[0].parameters())
        assert all(p.requires_grad for p in blocks[1].parameters())
        head = [p for n, p in model.named_parameters() if n.startswith(("score", "classifier"))]
        assert head and all(p.requires_grad for p in head)
        trainable, total = layers.parameter_counts(model)
        assert 0 < trainable < total


def test_freezing_more_layers_than_exist_is_refused(tiny_gpt2):
    _, model = classifier(tiny_gpt2)
    with pytest.raises(UserError, match="more than the model's 2 blocks"):
        layers.freeze_bottom_layers(model, 3)


def test_frozen_parameters_are_bit_identical_after_training_and_the_rest_moved(tiny_bert, tmp_path):
    tokenizer, model = classifier(tiny_bert)
    adapt(model, Techniques(freeze_embeddings=True, freeze_layers=1))
    before = snapshot(model)
    train(model, tokenizer, tmp_path, steps=3)
    for name, param in model.named_parameters():
        if name.startswith(("bert.embeddings", "bert.encoder.layer.0.")):
            assert torch.equal(param, before[name]), name
        elif name.endswith("weight") and "LayerNorm" not in name:
            assert not torch.equal(param, before[name]), name


def test_freeze_embeddings_alone_leaves_every_block_trainable(tiny_llama):
    _, model = classifier(tiny_llama)
    adapt(model, Techniques(freeze_embeddings=True, freeze_layers=0))
    assert not model.model.embed_tokens.weight.requires_grad
    assert all(p.requires_grad for p in layers.transformer_blocks(model).parameters())


def test_gradual_unfreezing_follows_the_schedule_and_unfrozen_blocks_then_learn(tiny_gpt2, tmp_path):
    from transformers import TrainerCallback

    tokenizer, model = classifier(tiny_gpt2)
    initial = snapshot(model)
    seen = {}

    class BeforeStep4(TrainerCallback):  # runs after the unfreezing callback at the start of step 4
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 4:
                seen.update(snapshot(model))

    trainer = train(model, tokenizer, tmp_path, steps=5, gradual_unfreeze=2, callbacks=[BeforeStep4()])
    unfreezing = next(c for c in trainer.callback_handler.callbacks if isinstance(c, layers.GradualUnfreezing))
    assert unfreezing.events == [(2, "block 1"), (4, "block 0")]  # every 2 steps, from the top
    block0 = [n for n in initial if n.startswith("transformer.h.0.") and n.endswith("weight") and ".ln_" not in n]
    block1 = [n for n in initial if n.startswith("transformer.h.1.") and n.endswith("weight") and ".ln_" not in n]
    assert all(torch.equal(seen[n], initial[n]) for n in block0)  # untouched while frozen (steps 0-3)
    assert all(not torch.equal(dict(model.named_parameters())[n], initial[n]) for n in block0 + block1)
    assert torch.equal(model.transformer.wte.weight, initial["transformer.wte.weight"])  # embeddings: not yet
    assert not model.transformer.wte.weight.requires_grad and model.transformer.h[0].attn.c_attn.weight.requires_grad


def test_layer_lr_decay_gives_each_depth_its_rate_and_no_decay_to_biases_and_norms(tiny_gpt2, tmp_path):
    tokenizer, model = classifier(tiny_gpt2)
    groups = layers.parameter_groups(model, lr=1e-3, weight_decay=0.1, layer_lr_decay=0.5)
    rate = {}
    for group in groups:
        for p in group["params"]:
            rate[id(p)] = (group["lr"], group["weight_decay"])
    assert rate[id(model.score.weight)] == (1e-3, 0.1)  # head: full rate
    assert rate[id(model.transformer.ln_f.weight)] == (1e-3, 0.0)  # norms: no weight decay
    assert rate[id(model.transformer.h[1].attn.c_attn.weight)] == (5e-4, 0.1)  # top block: lr * 0.5
    assert rate[id(model.transformer.h[0].attn.c_attn.weight)] == (2.5e-4, 0.1)  # bottom block: lr * 0.5**2
    assert rate[id(model.transformer.h[0].attn.c_attn.bias)] == (2.5e-4, 0.0)
    assert rate[id(model.transformer.wte.weight)] == (1.25e-4, 0.1)  # embeddings: lr * 0.5**3
    assert len(rate) == len({id(p) for p in model.parameters()})  # every parameter in exactly one group

    trainer = train(model, tokenizer, tmp_path, steps=2, lr=1e-3, layer_lr_decay=0.5)
    lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups}, reverse=True)
    assert lrs == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])  # the scheduler kept the ratios


def test_set_dropout_reaches_modules_attention_rates_and_config(tiny_bert, tiny_llama):
    _, bert = classifier(tiny_bert)
    layers.set_dropout(bert, 0.3)
    assert {m.p for m in bert.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    assert bert.config.hidden_dropout_prob == 0.3 and bert.config.attention_probs_dropout_prob == 0.3
    _, llama = classifier(tiny_llama)
    layers.set_dropout(llama, 0.2)
    assert {m.attention_dropout for m in llama.modules() if hasattr(m, "attention_dropout")} == {0.2}
    assert llama.config.attention_dropout == 0.2


# one tiny-GPT-2 block, n_embd 32: ln_1 64 + c_attn 32*96+96 + attn c_proj 32*32+32 + ln_2 64 + c_fc 32*128+128 +
# c_proj 128*32+32
GPT2_BLOCK = 64 + 3168 + 1056 + 64 + 4224 + 4128


def test_flops_per_token_by_hand_for_a_tiny_gpt2_classifier(tiny_gpt2):
    _, model = classifier(tiny_gpt2)
    layers.freeze_bottom_layers(model, 1)
    dense = 2 * GPT2_BLOCK + 64 + 64  # two blocks, ln_f, score head (2x32, no bias); wte/wpe are lookups
    trainable = GPT2_BLOCK + 64 + 64  # block 0 and the embeddings are frozen
    assert layers.matmul_flops_per_token(model) == 2 * dense + 4 * trainable


def test_flops_per_token_count_a_tied_lm_head_once_as_a_matmul(tiny_gpt2):
    tokenizer = modeling.load_tokenizer(str(tiny_gpt2))
    model = modeling.load_causal_lm(ModelConfig(model=str(tiny_gpt2)), tokenizer)
    head = model.get_output_embeddings().weight
    assert head is model.get_input_embeddings().weight  # tied
    dense = 2 * GPT2_BLOCK + 64 + head.numel()  # the head is the [vocabulary x 32] embedding, used as a matmul
    assert layers.matmul_flops_per_token(model) == 6 * dense
