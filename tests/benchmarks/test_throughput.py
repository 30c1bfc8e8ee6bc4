from benchmarks.throughput import matmul_flops_per_token
from common import layers, modeling


def test_flops_per_useful_token_by_hand_for_a_tiny_gpt2(tiny_gpt2):
    tokenizer = modeling.load_tokenizer(str(tiny_gpt2))
    model = modeling.load_classifier(str(tiny_gpt2), ["a", "b"], tokenizer)
    layers.freeze_bottom_layers(model, 1)
    # one block, n_embd 32: ln_1 64 + c_attn 32*96+96 + attn c_proj 32*32+32 + ln_2 64 + c_fc 32*128+128 + c_proj 128*32+32
    block = 64 + 3168 + 1056 + 64 + 4224 + 4128
    dense = 2 * block + 64 + 64  # two blocks, ln_f, score head (2x32, no bias); wte/wpe are lookups, not matmuls
    trainable = block + 64 + 64  # block 0 and the embeddings are frozen
    assert matmul_flops_per_token(model, causal=False) == 2 * dense + 4 * trainable
