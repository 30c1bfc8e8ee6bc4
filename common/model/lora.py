"""LoRA through peft: low-rank adapters on the attention and MLP matmuls, the base weights left untouched.

For classification the head (everything above the last block) is trained in full and saved with the adapter
(peft's modules_to_save), and
the output folder also keeps the base model's config with the label names, so `load()` rebuilds exactly the
trained classifier. `--merge-lora` instead folds the adapters into the weights and saves a plain model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from common.errors import UserError, first_line
from common.model import layers

logger = logging.getLogger(__name__)

# the matmuls to adapt, per architecture; anything else gets every linear layer but the output head
TARGET_MODULES = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
}


def _peft():
    try:
        import peft
    except ImportError:
        raise UserError("LoRA needs the peft package: pip install peft") from None
    return peft


def is_classifier(model) -> bool:
    """A sequence classifier (a head on a transformer), as against a causal LM: what peft's task type follows."""
    return type(model).__name__.endswith("ForSequenceClassification")


def add_lora(model, r: int, alpha: float, dropout: float, frozen_layers: int = 0):
    """Wrap `model` with LoRA adapters (rank --lora-r); only the adapters and a classification head train.

    With --freeze-layers N the bottom N blocks get no adapters, so they stay exactly as pretrained."""
    peft = _peft()
    model_type = model.config.model_type
    classifier = is_classifier(model)
    task_type = peft.TaskType.SEQ_CLS if classifier else peft.TaskType.CAUSAL_LM
    config = peft.LoraConfig(
        task_type=task_type,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=TARGET_MODULES.get(model_type, "all-linear"),
        fan_in_fan_out=model_type == "gpt2",  # GPT-2 stores its matmuls as Conv1D (transposed weights)
    )
    n_blocks = len(layers.transformer_blocks(model))
    if frozen_layers:  # --freeze-layers N with LoRA: adapters only on the blocks above the frozen ones
        config.layers_to_transform = list(range(frozen_layers, n_blocks))
    if classifier:
        # the head is everything above the last block (BERT's pooler too, which a masked-LM checkpoint lacks and
        # from_pretrained initializes at random): trained in full and saved with the adapter, or reloading the
        # adapter would pair it with a different random pooler
        head = head_modules(model)
        config.modules_to_save = head
        config.exclude_modules = head
    wrapped = peft.get_peft_model(model, config)
    logger.info("LoRA r=%d alpha=%g on %s", r, alpha, config.target_modules)
    return wrapped


def head_modules(model) -> list[str]:
    """Names of the modules above the last transformer block (final norm, pooler, classification head)."""
    depths = layers.parameter_depths(model)
    return [
        name
        for name, module in model.named_modules()
        if name
        and any(True for _ in module.parameters(recurse=False))
        and all(depths[id(p)] == 0 for p in module.parameters(recurse=False))
    ]


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def for_saving(model, merge: bool):
    """The model to save: with --merge-lora the adapters folded into a plain model, else as it is."""
    if merge and is_lora(model):
        logger.info("merging the LoRA adapters into the base weights")
        return model.merge_and_unload()
    return model


def save_extras(model, folder: Path, base_model: str | None = None) -> None:
    """Next to peft's adapter files: the base model's config (label names, pad token) for load(); and the base
    model named as the run named it (`base_model`: embedded:NAME, a hub id, a local folder made absolute) instead
    of the resolved path peft records, which points into this virtualenv and breaks when it moves."""
    if not is_lora(model):
        return
    model.get_base_model().config.save_pretrained(folder)
    if base_model:
        from common import assets
        from common.model.load import resolve

        adapter_file = folder / "adapter_config.json"
        adapter = json.loads(adapter_file.read_text())
        recorded = Path(str(adapter.get("base_model_name_or_path")))
        if recorded.is_dir() and Path(resolve(base_model)).resolve() == recorded.resolve():  # the same model
            adapter["base_model_name_or_path"] = (
                base_model if assets.is_embedded(base_model) else str(recorded.resolve())
            )
            adapter_file.write_text(json.dumps(adapter, indent=2) + "\n")


def load(folder: str | Path, model_class=None):
    """A saved LoRA run (adapter folder) rebuilt as the model that was trained, ready for inference; `model_class`:
    the transformers Auto class of the base model (default: from the adapter's peft task type)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from common.model.load import resolve

    peft = _peft()
    folder = Path(folder)
    if not (folder / "adapter_model.safetensors").is_file():  # peft would look for it on the hub, by the folder's name
        raise UserError(
            f"the LoRA run in '{folder}' has no adapter_model.safetensors (its trained weights); copy the run again "
            f"whole, or retrain it"
        )
    try:
        adapter = json.loads((folder / "adapter_config.json").read_text())
    except ValueError:
        raise UserError(f"'{folder / 'adapter_config.json'}' is not valid JSON; copy the run again whole") from None
    config = AutoConfig.from_pretrained(folder)
    if model_class is None:
        model_class = (
            AutoModelForSequenceClassification if adapter.get("task_type") == "SEQ_CLS" else AutoModelForCausalLM
        )
    base_model = adapter.get("base_model_name_or_path") or ""
    try:
        base = model_class.from_pretrained(resolve(base_model), config=config, use_safetensors=True)
    except OSError as e:
        raise UserError(
            f"the LoRA run in '{folder}' needs its base model '{base_model}', which could not be loaded with "
            f"safetensors weights ({first_line(e)}); "
            f"make it available, or retrain with --merge-lora for a self-contained model"
        ) from None
    return peft.PeftModel.from_pretrained(base, folder).eval()
