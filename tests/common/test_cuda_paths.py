"""What the recipes choose on a CUDA GPU; each test runs where CUDA is present and is skipped elsewhere."""

import pytest
import torch
from transformers import TrainingArguments

from common.config import CausalLMTraining
from common.data import padding_collator
from common.model.load import attention_implementation
from common.runtime import BF16_PAYS_FROM, data_workers, has_tf32, precision_flags
from common.train import training_arguments
from tests.conftest import classification_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_batches_are_padded_to_a_multiple_of_8_for_tensor_cores(gpt2_tokenizer):
    gpt2_tokenizer.pad_token = gpt2_tokenizer.eos_token
    batch = padding_collator(gpt2_tokenizer)([{"input_ids": [1, 2, 3]}, {"input_ids": [4] * 10}])
    assert batch["input_ids"].shape == (2, 16)


def test_bf16_where_the_gpu_has_it_sdpa_attention_and_the_standard_lm_loss():
    assert precision_flags("auto")["bf16"] == torch.cuda.is_bf16_supported(including_emulation=False)
    assert attention_implementation("auto", 64) is None  # transformers' default: SDPA
    assert not CausalLMTraining(epochs=1, lr=1e-4, batch_size=8).chunked_lm_loss


def test_a_small_step_trains_in_fp32_with_tf32_matmuls_and_fp32_asked_for_is_plain(tmp_path):
    small, large = BF16_PAYS_FROM["cuda"] / 10, BF16_PAYS_FROM["cuda"] * 10
    expected = {"bf16": False, "fp16": False, **({"tf32": True} if has_tf32() else {})}
    assert precision_flags("auto", small) == expected
    assert precision_flags("auto", large)["bf16"] == torch.cuda.is_bf16_supported(including_emulation=False)
    assert not precision_flags("fp32", small).get("tf32", False)
    for flags in (precision_flags("auto", small), precision_flags("fp32", small)):
        TrainingArguments(output_dir=str(tmp_path), **flags)  # TrainingArguments takes them on this GPU


def test_fused_adamw_pinned_memory_and_data_workers(tmp_path):
    args = training_arguments(classification_config(epochs=1.0, lr=1e-4, batch_size=8), tmp_path)
    assert args.optim == "adamw_torch_fused" and args.dataloader_pin_memory
    assert args.dataloader_num_workers == data_workers()
    assert not args.logging_nan_inf_filter and not args.use_cpu
