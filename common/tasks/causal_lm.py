"""Causal language modelling: next-token prediction on a corpus (domain adaptation), perplexity before and after.

Recipe: recipes/causal_lm.py. Its building blocks: common.data.tables and tokens (documents, blocks, packing),
common.model.load_causal_lm and lm_loss (the chunked loss), common.evaluate.causal_lm (perplexity, the hardest
passages, continuations).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from common.config import CausalLMOutput, CausalLMTraining, CorpusData, ModelConfig, RunConfig, Runs, Techniques
from common.errors import UserError
from common.tasks.base import Refusal, Route, Task, Text


@dataclass(frozen=True)
class CausalLMConfig(RunConfig):
    task: ClassVar[str] = "causal_lm"
    loss_per_token: ClassVar[bool] = True
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: CorpusData = dataclasses.field(default_factory=CorpusData)
    training: CausalLMTraining = dataclasses.field(default_factory=CausalLMTraining)
    techniques: Techniques = dataclasses.field(default_factory=Techniques)
    output: CausalLMOutput = dataclasses.field(default_factory=CausalLMOutput)
    runs: Runs = dataclasses.field(default_factory=Runs)


# ---------------------------------------------------------------- a saved language model answering


def generate(
    run, prompts: list[str], max_new_tokens: int = 60, temperature: float = 0.0, seed: int = 42, progress=False
) -> list[str]:
    """Each prompt's continuation (the new text only): greedy with temperature 0 (or one too small to sample
    with), else seeded nucleus sampling. A prompt is cut from its start to leave room for the new tokens within
    the model's positions (overlong says which would be)."""
    import torch
    from transformers import set_seed

    from common.model.chat import GREEDY_BELOW

    set_seed(seed)
    max_new_tokens = min(max_new_tokens, run.positions - 1)
    sampling = dict(do_sample=False)
    if temperature >= GREEDY_BELOW:
        sampling = dict(do_sample=True, temperature=temperature, top_p=0.9)
    results: list[str | None] = [None] * len(prompts)
    sides = run.tokenizer.padding_side, run.tokenizer.truncation_side
    # new tokens follow the prompt directly in every row of the batch; a cut prompt keeps its end, which the
    # continuation follows
    run.tokenizer.padding_side = run.tokenizer.truncation_side = "left"
    try:
        with torch.inference_mode():
            for positions, batch in run.batches(prompts, progress):
                inputs = run.tokenizer(
                    batch,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=min(run.max_length, run.positions - max_new_tokens),
                ).to(run.device)
                output = run.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, pad_token_id=run.tokenizer.pad_token_id, **sampling
                )
                for position, row in zip(positions, output[:, inputs["input_ids"].shape[1] :]):
                    results[position] = run.tokenizer.decode(row, skip_special_tokens=True)
    finally:
        run.tokenizer.padding_side, run.tokenizer.truncation_side = sides
    return results


def empty_generations(empty: int, of: int, tokenizer) -> str:
    """Why a causal LM may answer nothing, and what to do: said when generations come back empty."""
    why = f"{empty} of {of} generations are empty: the model ended the text at once ({tokenizer.eos_token!r})"
    if getattr(tokenizer, "chat_template", None):
        return (
            f"{why}. This model has a chat template: a plain question is text to continue, not a turn to answer; "
            f"for replies, fine-tune it with recipes/chat_sft.py, whose runs answer through the template"
        )
    return f"{why}; a longer prompt, or --temperature 0.7 to sample, may give it something to continue"


def overlong(run, prompts: list[str], max_new_tokens: int) -> list[tuple[int, int]]:
    """(number, tokens) of each prompt that with `max_new_tokens` new tokens passes the model's positions."""
    room = run.positions - max_new_tokens
    lengths = map(len, run.tokenizer(prompts)["input_ids"])
    return [(number, tokens) for number, tokens in enumerate(lengths) if tokens > room]


class GenerateRequest(BaseModel):
    prompts: list[Text] = Field(min_length=1)
    max_new_tokens: int = Field(default=60, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0, allow_inf_nan=False)
    seed: int = Field(default=42, ge=0, lt=2**32)


def answer_generate(run, request: GenerateRequest, max_batch: int) -> dict:
    if len(request.prompts) > max_batch:
        raise Refusal(f"{len(request.prompts)} prompts in one request; send at most {max_batch}")
    if request.max_new_tokens >= run.positions:
        raise Refusal(
            f"max_new_tokens: this model reads at most {run.positions} tokens, prompt included; ask for fewer", 422
        )
    if problems := overlong(run, request.prompts, request.max_new_tokens):
        number, tokens = problems[0]
        raise Refusal(
            f"prompts.{number} takes {tokens} tokens, and with max_new_tokens {request.max_new_tokens} passes the "
            f"{run.positions} this model reads; send a shorter prompt or ask for fewer new tokens",
            413,
        )
    return {"generations": generate(run, request.prompts, request.max_new_tokens, request.temperature, request.seed)}


# ---------------------------------------------------------------- make new-recipe

SMOKE_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a small corpus."""

import json

from common.run import from_argv
from recipes import {name}


def test_{name}_trains_evaluates_and_saves(tiny_llama, tmp_path):
    corpus = tmp_path / "corpus.txt"  # a .txt file: one document, whatever --text-column the DEFAULTS name
    corpus.write_text("\\n".join(f"line {{i}} of a small corpus" for i in range(200)))
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_llama), "--train-file", str(corpus), "--output-dir",
                                             str(out), "--epochs", "1", "--block-size", "32", "--batch-size", "4",
                                             "--max-train-samples", "8", "--precision", "fp32"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_perplexity"] > 1
'''


# ---------------------------------------------------------------- the task


class CausalLM(Task):
    name = "causal_lm"
    config = CausalLMConfig
    pipeline_tag = "text-generation"
    model_class = "AutoModelForCausalLM"
    main_metrics = ("perplexity", "next_token_accuracy", "loss")
    curve_metric = "next_token_accuracy"
    does = "generates text"
    routes = (Route("/generate", GenerateRequest, answer_generate, '{"prompts": [...]}'),)
    recipe_columns = {"TEXT": "text_column"}

    def report(self, evaluation):
        from common.report import ReportParts, markdown

        return ReportParts(
            data=markdown.corpus_data(evaluation),
            caveats=evaluation.caveats,
            sections=[markdown.continuations_section(evaluation)],
            files={
                "hardest_passages.csv": evaluation.passages.to_csv(index=False),
                "continuations.csv": evaluation.continuations.to_csv(index=False),
            },
            test={**evaluation.metrics, "block_losses": evaluation.block_losses},
        )

    def load_snippet(self, where: str) -> str:
        return (
            f'from transformers import pipeline\n\ngenerate = pipeline("text-generation", model="{where}")\n'
            'print(generate("Once upon a time", max_new_tokens=40)[0]["generated_text"])'
        )

    def recipe_settings(self, columns: dict) -> dict:
        return {"text_column": columns["TEXT"][0]} if "TEXT" in columns else {}

    def recognizes(self, architecture: str, adapter_task_type: str | None) -> bool:
        if adapter_task_type is not None:
            return adapter_task_type == "CAUSAL_LM"
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        # GPT2LMHeadModel is a causal LM too, whatever its name
        return architecture in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or architecture.endswith("ForCausalLM")

    def predict(self, run, frame, columns, *, max_new_tokens: int, temperature: float, seed: int):
        import logging

        if max_new_tokens >= run.positions:
            raise UserError(
                f"--max-new-tokens {max_new_tokens}: this model reads at most {run.positions} tokens, prompt "
                f"included; ask for fewer"
            )
        prompts = frame[columns[0]].astype(str).tolist()
        if cut := overlong(run, prompts, max_new_tokens):
            logging.getLogger(__name__).warning(
                "%d prompt(s) are longer than the %d tokens that leave room for %d new ones: their starts are cut",
                len(cut),
                run.positions - max_new_tokens,
                max_new_tokens,
            )
        frame["generation"] = generate(run, prompts, max_new_tokens, temperature, seed, progress=True)
        if empty := int((frame["generation"].str.strip() == "").sum()):
            logging.getLogger(__name__).warning(empty_generations(empty, len(frame), run.tokenizer))
        return frame

    def check_recipe_data(self, path: str, settings: dict) -> None:
        if Path(path).is_dir() or Path(path).suffix == ".txt":  # a corpus of .txt files has no columns
            from common.data import read_file

            read_file(path, "DATA")
            return
        super().check_recipe_data(path, settings)

    def smoke_test(self, name: str, source: str, recipe: str) -> str:
        return SMOKE_TEST.format(name=name, source=source)


TASK = CausalLM()
