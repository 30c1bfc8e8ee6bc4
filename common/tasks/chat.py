"""Chat and instruction fine-tuning (supervised fine-tuning, SFT): a causal LM trained on conversations through its
chat template, on the assistant's replies only, and measured by its own replies to held-out prompts.

Recipe: recipes/chat_sft.py. Its building blocks: common.data.conversations (the formats people bring, checked and
split), common.data.chat (the template, what is trained, packing, batching), common.model.chat (stopping at the end
of a turn, replying), common.evaluate.chat (response loss, replies scored against the references, the stop check).
A saved run answers OpenAI-style POST /v1/chat/completions, and POST /generate with raw prompts.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from common.config import DataConfig, OutputConfig
from common.config.fields import AUTO_MATCHES_ANY, MAY_CHANGE, option, positive, tokens_or_auto
from common.errors import UserError
from common.tasks.base import Refusal, Route, Task, Text
from common.tasks.causal_lm import CausalLM, CausalLMConfig


@dataclass(frozen=True)
class ChatData(DataConfig):
    prompt_column: str | None = option(
        None,
        "a table's prompt column (with --response-column); unset: the format is recognized by its columns: messages "
        "(OpenAI), conversations (ShareGPT), instruction/input/output (Alpaca), prompt/completion, prompt/response, "
        "question/answer",
        metavar="COLUMN",
    )
    response_column: str | None = option(None, "a table's response column (with --prompt-column)", metavar="COLUMN")
    system_prompt: str | None = option(None, "a system message for every conversation that has none")
    chat_template: str = option(
        "auto",
        "auto: the tokenizer's own chat template; chatml: ChatML (adds <|im_start|>/<|im_end|> to a base model's "
        "vocabulary); or a Jinja template file",
        metavar="auto|chatml|FILE",
        is_path=True,
    )
    train_on: str = option(
        "assistant",
        "which tokens the loss is on: every assistant reply, the last reply of each conversation, or all tokens "
        "(prompts too)",
        choices=["assistant", "last", "all"],
    )
    max_length: int | str = option(
        "auto",
        "tokens per conversation; longer ones are left out (not cut: a cut reply never learns to stop); auto: the "
        "length that keeps 199 in 200 training conversations, rounded up to 8, at most 2048 and what the model reads",
        check=tokens_or_auto,
        metavar="N|auto",
        on_resume=AUTO_MATCHES_ANY,  # recorded as the length auto took
    )
    packing: bool = option(
        False,
        "pack whole conversations into rows of --max-length tokens, positions restarting at each, so that none "
        "attends to another (the same losses as unpacked); fewer, longer rows",
    )


def positive_or_auto(value) -> str | None:
    return None if value == "auto" else positive(value)


@dataclass(frozen=True)
class ChatOutput(OutputConfig):
    max_new_tokens: int | str = option(
        "auto",
        "the longest reply generated to each test prompt, before and after training; a reply still going then "
        "counts as one that did not stop. auto: room for the longest test reply and a quarter more (at most 512)",
        check=positive_or_auto,
        metavar="N|auto",
        on_resume=MAY_CHANGE,
    )
    reply_prompts: int = option(
        200,
        "how many test prompts the model replies to, before and after training (the first N; the reply loss covers "
        "every test conversation): on a CPU each costs seconds",
        check=positive,
        metavar="N",
        on_resume=MAY_CHANGE,
    )


@dataclass(frozen=True)
class ChatConfig(CausalLMConfig):
    """A causal LM's run, on conversations: its own data and output settings, the causal LM's training (--lm-loss)."""

    task: ClassVar[str] = "chat"
    data: ChatData = dataclasses.field(default_factory=ChatData)
    output: ChatOutput = dataclasses.field(default_factory=ChatOutput)


# ---------------------------------------------------------------- a saved chat model answering


def chat(run, conversations: list[list], max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 42, top_p=1.0):
    """The saved model's reply to each conversation (Replies: texts, stopped, token counts), stopping at the end of
    a turn as its saved chat template ends one."""
    from common.data.chat import stop_tokens
    from common.model.chat import reply

    stops = stop_tokens(run.tokenizer)
    return reply(
        run.model, run.tokenizer, conversations, stops, max_new_tokens, run.batch_size, temperature, top_p, seed
    )


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; fields it has and this server does not use (model, user, ...) are ignored."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)  # 0 here: greedy, repeatable
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    n: int = Field(default=1, ge=1)
    stream: bool = False
    seed: int = Field(default=42, ge=0, lt=2**32)
    stop: str | list[str] | None = None


def answer_chat(run, request: ChatCompletionRequest, max_batch: int) -> dict:
    if request.stream:
        raise Refusal("streaming is not served; send stream: false (or leave it out)")
    if request.n != 1:
        raise Refusal(f"n={request.n}: this server returns one choice per request; send n: 1")
    from common.data.conversations import checked

    try:
        messages = checked([message.model_dump() for message in request.messages], ends_on="user")
    except ValueError as problem:
        raise Refusal(f"messages: {problem}", 422) from None
    from common.data.chat import ids, render

    prompt_tokens = len(ids(run.tokenizer, [render(run.tokenizer, messages, add_generation_prompt=True)])[0])
    room = run.positions - prompt_tokens
    if room < 1:
        raise Refusal(
            f"the messages take {prompt_tokens} tokens and this model reads at most {run.positions}; send fewer or "
            f"shorter messages",
            413,
        )
    asked = request.max_completion_tokens or request.max_tokens or 256
    replies = chat(run, [messages], min(asked, room), request.temperature, request.seed, request.top_p)
    text, stopped = replies.texts[0], replies.stopped[0]
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    if cut >= 0:
        text, stopped = text[:cut], True
    completion_tokens = replies.new_tokens[0]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": run.folder.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop" if stopped else "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# ---------------------------------------------------------------- make new-recipe

SMOKE_TEST = '''"""Smoke test for recipes/{name}.py (made by `make new-recipe` from {source}): a tiny model, a few
prompt/response rows with the columns that the recipe's DEFAULTS name (or prompt/response)."""

import json

import pandas as pd

from common.run import from_argv
from recipes import {name}


def test_{name}_trains_evaluates_and_saves(tiny_llama, tmp_path):
    data = {name}.DEFAULTS.data
    prompt, response = data.prompt_column or "prompt", data.response_column or "response"
    rows = pd.DataFrame({{prompt: [f"what is {{i}} plus one?" for i in range(40)],
                          response: [f"{{i + 1}}" for i in range(40)]}})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out"
    from_argv({name}.main, {name}.DEFAULTS, ["--model", str(tiny_llama), "--train-file", str(tmp_path / "rows.csv"),
                                             "--output-dir", str(out), "--epochs", "1", "--batch-size", "8",
                                             "--max-new-tokens", "4", "--precision", "fp32"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_loss"] > 0 and 0 <= metrics["test_stopped"] <= 1
'''


# ---------------------------------------------------------------- the task


class Chat(CausalLM):
    name = "chat"
    config = ChatConfig
    main_metrics = ("chrf", "rouge_l", "exact_match", "stopped", "perplexity", "loss")
    does = "chats"
    routes = (
        Route("/v1/chat/completions", ChatCompletionRequest, answer_chat, '{"messages": [{"role": "user", ...}]}'),
        *CausalLM.routes,
    )
    recipe_columns = {"PROMPT": "prompt_column", "RESPONSE": "response_column"}

    def report(self, evaluation):
        from common.report import ReportParts

        return ReportParts(
            data=data_section(evaluation),
            caveats=evaluation.caveats,
            sections=[before_after_section(evaluation), answers_section(evaluation), masks_section(evaluation)],
            shown_elsewhere=IN_BEFORE_AFTER,
            files={"answers.csv": evaluation.answers.to_csv(index=False)},
            test=evaluation.metrics,
            card_about=", to chat: trained on the assistant's replies through its chat template",
        )

    def load_snippet(self, where: str) -> str:
        return (
            f'from transformers import pipeline\n\nchat = pipeline("text-generation", model="{where}")\n'
            'messages = [{"role": "user", "content": "Hello! What can you do?"}]\n'
            'print(chat(messages, max_new_tokens=64)[0]["generated_text"][-1]["content"])'
        )

    def recognizes(self, architecture: str, adapter_task_type: str | None) -> bool:
        return False  # a chat model's folder looks like any causal LM's: only its run's record says chat

    def input_columns(self, run_config: dict) -> list[str]:
        return ["messages"]

    def read_input(self, frame):
        """A `messages` column of conversations ending on the user, or (a .txt file, standard input) a user message
        per line."""
        rows = []
        for number, value in enumerate(frame["messages"], start=1):
            if isinstance(value, str) and not value.lstrip().startswith("["):
                rows.append([{"role": "user", "content": value}])
                continue
            from common.data.conversations import checked, message_list

            try:
                rows.append(checked(message_list(value, "messages"), ends_on="user"))
            except ValueError as problem:
                raise UserError(f"the input, row {number}: {problem}") from None
        frame = frame.copy()
        frame["messages"] = rows
        return frame

    def predict(self, run, frame, columns, *, max_new_tokens: int, temperature: float, seed: int):
        replies = chat(run, list(frame["messages"]), max_new_tokens, temperature, seed)
        frame["reply"] = replies.texts
        frame["stopped"] = replies.stopped
        return frame

    def recipe_settings(self, columns: dict) -> dict:
        return Task.recipe_settings(self, columns)  # PROMPT= and RESPONSE= as given (not the causal LM's TEXT=)

    def check_recipe_data(self, path: str, settings: dict) -> None:
        from common.data import read_file
        from common.data.conversations import shape_of

        table = read_file(path, "DATA", folders=False)
        shape_of(table.columns, settings.get("prompt_column"), settings.get("response_column"))

    def smoke_test(self, name: str, source: str, recipe: str) -> str:
        return SMOKE_TEST.format(name=name, source=source)


# ---------------------------------------------------------------- report.md


def data_section(evaluation) -> str:
    rows = [
        f"| {name} | {count} | {evaluation.trained_share.get(name, 0):.0%} |"
        for name, count in evaluation.conversations.items()
    ]
    return "\n".join(["## Data", "", "| split | conversations | tokens trained |", "|---|---|---|", *rows, ""])


# metrics the before/after section shows, which the metrics table leaves out
IN_BEFORE_AFTER = ("chrf", "bleu", "rouge_l", "exact_match", "stopped", "reply_tokens", "loss_before",
                   "perplexity_before", "next_token_accuracy_before")  # fmt: skip


def before_after_section(evaluation) -> str:
    m = evaluation.metrics
    names = [
        ("loss", "response loss (held-out replies)"),
        ("perplexity", "response perplexity"),
        ("chrf", "chrF of the replies"),
        ("bleu", "BLEU"),
        ("rouge_l", "ROUGE-L F1"),
        ("exact_match", "exact match"),
        ("stopped", f"replies that stopped within {evaluation.max_new_tokens} tokens"),
        ("reply_tokens", "tokens per reply"),
    ]
    rows = [
        f"| {label} | {m[f'test_{n}_before']:.4f} | {m[f'test_{n}']:.4f} |"
        for n, label in names
        if f"test_{n}" in m and f"test_{n}_before" in m
    ]
    return "\n".join(
        [
            "## Before and after training (test)",
            "",
            "The model's own greedy replies to the test prompts, scored against the reference replies (sacrebleu's "
            "chrF and BLEU, ROUGE-L over words, exact match after lower-casing and dropping punctuation and articles).",
            "",
            "| | before | after |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def _cell(text: str, limit: int = 140) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "..."


def answers_section(evaluation, shown: int = 8) -> str:
    import json

    lines = [
        f"## Replies before and after ({min(shown, len(evaluation.answers))} of {len(evaluation.answers)} test "
        f"prompts; all in [answers.csv](answers.csv))",
        "",
        "| prompt | reference | before | after |",
        "|---|---|---|---|",
    ]
    for row in evaluation.answers.head(shown).to_dict("records"):
        references = json.loads(row["references"])
        reference = _cell(references[0]) + (f" (and {len(references) - 1} more)" if len(references) > 1 else "")
        before = _cell(row["before"]) + ("" if row["stopped_before"] else " (did not stop)")
        after = _cell(row["after"]) + ("" if row["stopped_after"] else " (did not stop)")
        lines.append(f"| {_cell(row['prompt'])} | {reference} | {before} | {after} |")
    return "\n".join(lines) + "\n"


def masks_section(evaluation) -> str:
    lines = [
        "## What was trained",
        "",
        "Two training conversations as the model saw them, the trained tokens between ⟦ and ⟧:",
        "",
    ]
    for example in evaluation.examples:
        lines += ["```text", example.rstrip(), "```", ""]
    return "\n".join(lines)


TASK = Chat()
