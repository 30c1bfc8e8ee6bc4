"""Loading tokenizers and models (embedded, local folder or hub id): label maps, pad ids, safetensors only."""

from __future__ import annotations

import contextlib
import json
import logging
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from common import assets
from common.config import ModelConfig
from common.data.tokens import check_max_length, positions
from common.errors import UserError, first_line

logger = logging.getLogger(__name__)


def resolve(name: str) -> str:
    """What `from_pretrained` should read: the prepared folder of an embedded model, else the name as given."""
    return str(assets.model_dir(name)) if assets.is_embedded(name) else name


def load_config(name: str, trust_remote_code: bool = False, **overrides):
    """The model's config; any failure to find it becomes one clear line."""
    source = resolve(name)
    path = Path(source)
    if path.is_dir() and not (path / "config.json").exists():
        raise UserError(f"--model '{name}' is a folder without config.json, so not a saved model; point it at one")
    if path.is_dir():
        check_config_file(name, path / "config.json", trust_remote_code)
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **overrides)
    except (OSError, ValueError, KeyError, TypeError) as e:
        if "trust_remote_code" in str(e):
            raise UserError(
                f"--model '{name}' needs its own code to run; pass --trust-remote-code if you trust it"
            ) from None
        if path.is_dir():
            raise UserError(f"--model '{name}': its config.json could not be used ({first_line(e)})") from None
        embedded = ", ".join(assets.PREFIX + k for k in assets.EMBEDDED_MODELS)
        raise UserError(
            f"could not load model '{name}': it is not a local folder and could not be fetched from the hub "
            f"(offline, or no such model); use a local folder or an embedded model: {embedded}"
        ) from None


def check_config_file(name: str, file: Path, trust_remote_code: bool = False) -> None:
    """A local model's config.json: valid JSON naming a model type this transformers knows (else its own code)."""
    from transformers import CONFIG_MAPPING, __version__

    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise UserError(f"--model '{name}': '{file}' is not valid JSON ({first_line(e)}); re-save the model") from None
    if not isinstance(values, dict):
        raise UserError(f"--model '{name}': '{file}' must hold a JSON object; re-save the model")
    model_type = values.get("model_type")
    if model_type not in CONFIG_MAPPING and not (trust_remote_code and "auto_map" in values):
        known = "has no model_type" if model_type is None else f"names model_type '{model_type}'"
        raise UserError(
            f"--model '{name}': '{file}' {known}, which transformers {__version__} does not know; check the file, "
            f"or use a transformers version that has this model"
        )


def weights_problem(file: Path) -> str | None:
    """What is wrong with a safetensors file, read from its header alone, or None: it must be as long as its
    header says (a copy or download cut short is not)."""
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            (header_size,) = struct.unpack("<Q", f.read(8))
            if header_size > size:
                return f"{file.name} has no valid header"
            header = json.loads(f.read(header_size))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error):
        return f"{file.name} cannot be read as safetensors"
    if size != 8 + header_size + end:
        return f"{file.name} is {size} bytes, its header says {8 + header_size + end}: cut short or damaged"
    return None


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The model's tokenizer, as it comes (decoder LMs such as GPT-2 have no pad token: see pad_with_end_of_text)."""
    load_config(name, trust_remote_code)  # an unknown model should be reported as such, not as missing tokenizer files
    try:
        return AutoTokenizer.from_pretrained(resolve(name), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(
            f"could not load a tokenizer for '{name}' ({first_line(e)}); the folder needs tokenizer files"
        ) from None


def pad_with_end_of_text(tokenizer):
    """A decoder LM's tokenizer usually has no pad token (it never needed one in pretraining); batches of unequal
    length are then padded with the end-of-text token. The attention mask hides the padding from the model."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"the tokenizer of '{tokenizer.name_or_path}' has neither a pad nor an end-of-text token to pad with"
            )
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token: padding with the end-of-text token %r", tokenizer.eos_token)
    return tokenizer


# PyTorch's fused CPU attention kernel (SDPA) has a fixed cost per call that outweighs the whole eager computation
# for short sequences: measured here, one layer's forward+backward ran 2-4x faster eager at 28-128 tokens, and the
# sentiment recipe's training step 1.1-1.3x faster. At 256 tokens a full step is the same either way.
EAGER_ATTENTION_UP_TO = 128


def attention_implementation(choice: str, sequence_length: int | None) -> str | None:
    """--attention auto|sdpa|eager: auto is eager on a CPU for sequences up to EAGER_ATTENTION_UP_TO tokens, else
    None: transformers' own choice (SDPA where the model supports it; on a GPU always, where its kernels win)."""
    if choice != "auto":
        return choice
    short = sequence_length is not None and sequence_length <= EAGER_ATTENTION_UP_TO
    return "eager" if short and not torch.cuda.is_available() else None


def load_weights(
    model_class,
    name: str,
    config,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    attention: str | None = None,
):
    """from_pretrained in fp32, reading safetensors only unless --allow-pickle (pickle files can run code on load);
    `attention`: an attn_implementation (None: transformers' default)."""
    source = resolve(name)
    path = Path(source)
    if path.is_dir() and not allow_pickle and not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
        raise UserError(
            f"--model '{name}' has no safetensors weights{' (only ' + ', '.join(pickles) + ')' if pickles else ''}; "
            f"pickle weights can run code when loaded: convert them to safetensors, or pass --allow-pickle "
            f"if you trust the source"
        )
    for file in sorted(path.glob("*.safetensors")) if path.is_dir() else []:
        problem = weights_problem(file)
        if problem:
            raise UserError(f"--model '{name}': {problem}; copy or save the model again")
    try:
        with _without_load_report():
            model, loading = model_class.from_pretrained(
                source,
                config=config,
                dtype=torch.float32,
                attn_implementation=attention,
                trust_remote_code=trust_remote_code,
                use_safetensors=None if allow_pickle else True,
                output_loading_info=True,
            )
        _report_loading(model, loading)
        return model
    except OSError as e:
        raise UserError(
            f"could not load the weights of '{name}' ({first_line(e)}); with only pickle "
            f"weights (.bin), pass --allow-pickle if you trust the source"
        ) from None
    except SafetensorError as e:
        raise UserError(f"could not load the weights of '{name}' ({first_line(e)}); save the model again") from None
    except ValueError as e:
        if attention and "attention" in str(e):  # e.g. SDPA asked of a model that has no SDPA attention
            raise UserError(
                f"--attention {attention} does not work with '{name}' ({first_line(e)}); use --attention auto"
            ) from None
        raise


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _without_load_report():
    """transformers logs a table (with terminal colour codes) of every weight the checkpoint did not fill, which
    for a new classification head is expected and reads as an alarm; _report_loading says it in a line."""
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    modeling_logger.addFilter(drop)
    try:
        yield
    finally:
        modeling_logger.removeFilter(drop)


# modules a task model adds on top of a pretrained body: they start random and are what fine-tuning trains first
NEW_HEADS = ("score.", "classifier.", "pooler.", "lm_head.")


def _grouped(keys) -> str:
    """Weight names grouped by their module: `score.weight` -> `score`, 'cls.predictions.*' once."""
    modules = sorted({key.rsplit(".", 1)[0] if "." in key else key for key in keys})
    shown = ", ".join(modules[:4])
    return shown + (f" and {len(modules) - 4} more" if len(modules) > 4 else "")


def _report_loading(model, loading: dict) -> None:
    """One line for the new head, one for checkpoint weights the model does not use; a warning for anything
    else the checkpoint lacked (those weights start random, which a fine-tune does not expect)."""
    missing = loading.get("missing_keys") or []
    head = [k for k in missing if k.split(".", 1)[-1].startswith(NEW_HEADS) or k.startswith(NEW_HEADS)]
    other = [k for k in missing if k not in head]
    if head:
        logger.info("%s: new %s, randomly initialized (this run trains it)", type(model).__name__, _grouped(head))
    if other:
        logger.warning("the checkpoint has no weights for %s: they start random", _grouped(other))
    unused = loading.get("unexpected_keys") or []
    if unused:
        logger.info(
            "not used from the checkpoint: %s (parts this model has no place for, such as a pretraining head)",
            _grouped(unused),
        )


def model_positions(spec: ModelConfig) -> int | None:
    """How many tokens the model reads, from its config alone (no weights loaded)."""
    return positions(load_config(spec.model, spec.trust_remote_code))


def load_classifier(spec: ModelConfig, label_names: list[str], tokenizer, max_length: int | None = None):
    """A sequence-classification model with a new head, label names stored in its config and the pad id set (a
    decoder's head reads the last token that is not padding, so it must know which id pads); `max_length` is
    checked against the model's positions before the weights load, and chooses the attention."""
    id2label = dict(enumerate(label_names))
    config = load_config(
        spec.model,
        spec.trust_remote_code,
        num_labels=len(label_names),
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
        pad_token_id=tokenizer.pad_token_id,
        # what the model's forward would otherwise set on its config at the first call; under --compile that
        # change of the config made torch.compile compile the whole model a second time
        problem_type="single_label_classification",
    )
    _check_vocab(spec.model, config, tokenizer)
    if tokenizer.pad_token_id is None:
        raise UserError(
            f"the tokenizer of '{spec.model}' has no pad token, as decoder LMs have none; a decoder "
            f"classifier pads with end-of-text, as recipes/gpt2_sentiment.py does"
        )
    if max_length:
        check_max_length(max_length, config)
    return load_weights(
        AutoModelForSequenceClassification,
        spec.model,
        config,
        spec.trust_remote_code,
        spec.allow_pickle,
        attention_implementation(spec.attention, max_length),
    )


def load_causal_lm(
    spec: ModelConfig,
    tokenizer,
    block_size: int | None = None,
    length_flag: str = "--block-size",
    added_tokens: int = 0,
):
    """A causal LM; `block_size` (the run's `length_flag`) is checked against the model's positions and chooses the
    attention; `added_tokens`: tokens the run added to the tokenizer (a chat template's), for which the embeddings
    grow."""
    config = load_config(spec.model, spec.trust_remote_code)
    _check_vocab(spec.model, config, tokenizer, added_tokens)
    if block_size:
        check_max_length(block_size, config, length_flag)
    model = load_weights(
        AutoModelForCausalLM,
        spec.model,
        config,
        spec.trust_remote_code,
        spec.allow_pickle,
        attention_implementation(spec.attention, block_size),
    )
    if added_tokens:
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _check_vocab(name: str, config, tokenizer, added_tokens: int = 0) -> None:
    vocab = getattr(config.get_text_config(), "vocab_size", None)
    if vocab and len(tokenizer) - added_tokens > vocab:
        raise UserError(
            f"the tokenizer of '{name}' has {len(tokenizer)} tokens but the model only {vocab}: they do not belong "
            f"together; save the matching tokenizer with the model"
        )


def generate(model, tokenizer, prompt: str, max_new_tokens: int, seed: int) -> str:
    """A sampled continuation of `prompt` (nucleus sampling, seeded so runs repeat)."""
    from transformers import set_seed

    set_seed(seed)
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            top_p=0.9,
            temperature=0.8,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0], skip_special_tokens=True)
