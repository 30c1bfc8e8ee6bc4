"""Conversations from tables: the chat formats people bring, recognized by their columns and turned into one shape
(a list of {"role", "content"} messages), checked row by row, cleaned and split by whole conversation.

Recognized, in this order (the first whose columns the data has):
  messages                   OpenAI / TRL: [{"role": "system"|"user"|"assistant", "content": "..."}, ...]
  conversations              ShareGPT: [{"from": "system"|"human"|"gpt", "value": "..."}, ...]
  instruction, output        Alpaca, with an optional `input` that follows the instruction
  prompt, completion         TRL's prompt/completion (strings, or lists of messages)
  prompt, response / question, answer
or the columns named by --prompt-column and --response-column. A conversation is an optional system message, then
user and assistant turns in alternation, ending on the assistant. A row that is not is refused in one line that
names it: the model would otherwise be trained on a reply to nothing, or on a conversation cut in the middle.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from common.data.tables import load_splits
from common.errors import UserError

logger = logging.getLogger(__name__)

ROLES = {  # the roles of the formats above -> ours
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
}
PAIRS = [("prompt", "completion"), ("prompt", "response"), ("question", "answer")]


def shape_of(columns, prompt_column: str | None = None, response_column: str | None = None) -> str:
    """Which format a table with these columns holds: messages, conversations, alpaca, or pair:PROMPT:RESPONSE."""
    columns = set(map(str, columns))
    if prompt_column or response_column:
        prompt, response = prompt_column or "prompt", response_column or "response"
        missing = [c for c in (prompt, response) if c not in columns]
        if missing:
            raise UserError(
                f"column '{missing[0]}' is not in the data (columns: {_listed(columns)}); choose it with "
                f"--prompt-column / --response-column"
            )
        return f"pair:{prompt}:{response}"
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "conversations"
    if {"instruction", "output"} <= columns:
        return "alpaca"
    for prompt, response in PAIRS:
        if {prompt, response} <= columns:
            return f"pair:{prompt}:{response}"
    raise UserError(
        f"no conversations in the data (columns: {_listed(columns)}); give a `messages` column (OpenAI format), "
        f"`conversations` (ShareGPT), instruction/output (Alpaca), prompt/completion, or name the columns with "
        f"--prompt-column and --response-column"
    )


def _listed(columns) -> str:
    text = ", ".join(sorted(map(str, columns)))
    return text if len(text) <= 200 else text[:200] + "..."


def to_conversations(frame: pd.DataFrame, shape: str, where: str, system_prompt: str | None = None) -> list[list]:
    """Each row as a checked conversation; the first bad row is a UserError naming it (`where`: "the train data")."""
    conversations = []
    for number, row in enumerate(frame.to_dict("records"), start=1):
        try:
            messages = _messages(row, shape)
            messages = checked(messages)
        except ValueError as problem:
            raise UserError(f"{where}, row {number}: {problem}; fix or remove that row") from None
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        conversations.append(messages)
    return conversations


def _messages(row: dict, shape: str) -> list[dict]:
    """One row's messages as the format holds them (roles not yet checked)."""
    if shape in ("messages", "conversations"):
        return message_list(row[shape], shape)
    if shape == "alpaca":
        instruction, extra = _text(row["instruction"], "instruction"), row.get("input")
        extra = "" if _missing(extra) else str(extra).strip()
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(row["output"], "output")}]
    _, prompt_column, response_column = shape.split(":")
    prompt, response = row[prompt_column], row[response_column]
    if isinstance(prompt, (list, np.ndarray)):  # TRL's conversational prompt/completion: lists of messages
        turns = message_list(prompt, prompt_column)
        return turns + message_list(response, response_column)
    return [
        {"role": "user", "content": _text(prompt, prompt_column)},
        {"role": "assistant", "content": _text(response, response_column)},
    ]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _text(value, column: str) -> str:
    if _missing(value) or not str(value).strip():
        raise ValueError(f"'{column}' is empty")
    return str(value)


def message_list(value, column: str) -> list[dict]:
    """A cell holding a list of messages (a JSON string of one, as csv files keep it, is read too)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"'{column}' is not a JSON list of messages") from None
    if isinstance(value, np.ndarray):  # parquet
        value = value.tolist()
    if not isinstance(value, list):
        raise ValueError(f"'{column}' holds a {type(value).__name__}, not a list of messages")
    messages = []
    for position, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise ValueError(f"message {position} is a {type(message).__name__}, not an object with a role and content")
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if isinstance(content, list):  # OpenAI's content parts: the text ones, joined
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        messages.append({"role": role, "content": content})
    return messages


def checked(messages: list[dict], ends_on: str = "assistant") -> list[dict]:
    """The conversation with roles mapped to system/user/assistant: an optional system message, then user and
    assistant in turn, ending on `ends_on` (the assistant for training; the user for a conversation to reply to);
    no empty message. ValueError says what is wrong."""
    if not messages:
        raise ValueError("the conversation has no messages")
    result = []
    for position, message in enumerate(messages, start=1):
        role = ROLES.get(str(message["role"]).lower()) if message["role"] is not None else None
        if role is None:
            raise ValueError(f"message {position} has the role {message['role']!r}; use system, user or assistant")
        content = message["content"]
        if not isinstance(content, str) or not content.strip():
            what = "reply" if role == "assistant" else f"{role} message"
            raise ValueError(f"message {position} is an empty {what}")
        if role == "system" and position != 1:
            raise ValueError(f"message {position} is a system message; only the first message may be one")
        expected = "user" if not result or result[-1]["role"] in ("system", "assistant") else "assistant"
        if role != "system" and role != expected:
            after = f"right after the {result[-1]['role']}" if result else "first"
            raise ValueError(
                f"message {position} is from the {role} {after}; user and assistant take turns, user first"
            )
        result.append({"role": role, "content": content})
    if all(message["role"] == "system" for message in result):
        raise ValueError("the conversation holds only a system message; add the user's message and the reply")
    if result[-1]["role"] != ends_on:
        if ends_on == "assistant":
            raise ValueError("the conversation ends on the user, with no reply to learn")
        raise ValueError("the messages end on the assistant; end on the user message to reply to")
    return result


# ---------------------------------------------------------------- cleaning and splitting


def key(conversation: list[dict]) -> str:
    return json.dumps(conversation, ensure_ascii=False)


def opening(conversation: list[dict]) -> str:
    """What a conversation is about before any reply: its system message and first user message."""
    first_user = next(m["content"] for m in conversation if m["role"] == "user")
    system = conversation[0]["content"] if conversation[0]["role"] == "system" else ""
    return json.dumps([system.strip(), first_user.strip().lower()], ensure_ascii=False)


def deduplicate(conversations: list[list], where: str) -> list[list]:
    seen, kept = set(), []
    for conversation in conversations:
        if key(conversation) not in seen:
            seen.add(key(conversation))
            kept.append(conversation)
    if len(kept) < len(conversations):
        logger.info("%s: dropped %d duplicate conversations -> %d", where, len(conversations) - len(kept), len(kept))
    return kept


def split_by_opening(conversations: list[list], seed: int, names=("validation", "test"), fraction=0.1) -> dict:
    """Carve `fraction` of the conversations for each held-out split, keeping every conversation that opens with the
    same question in one split: the same question with another answer in training would make the test easy."""
    groups: dict[str, list[int]] = {}
    for index, conversation in enumerate(conversations):
        groups.setdefault(opening(conversation), []).append(index)
    n_out = max(1, round(len(conversations) * fraction))
    if len(groups) < len(names) + 1 or len(conversations) < n_out * len(names) + 2:
        raise UserError(
            f"only {len(conversations)} conversations ({len(groups)} different openings): too few to split off "
            f"{'/'.join(names)}; add data or pass those files"
        )
    order = np.random.default_rng(seed).permutation(list(groups))
    splits, taken = {name: [] for name in names}, 0
    for name in names:
        while len(splits[name]) < n_out and taken < len(order) - 1:
            splits[name] += groups[order[taken]]
            taken += 1
    train = sorted(i for opening_ in order[taken:] for i in groups[opening_])
    result = {"train": [conversations[i] for i in train]}
    result.update({name: [conversations[i] for i in sorted(indices)] for name, indices in splits.items()})
    return result


def drop_leaks(splits: dict) -> dict:
    """Training conversations that open like a validation or test one (user-given splits) are dropped."""
    held = {opening(c) for name in ("validation", "test") for c in splits.get(name, [])}
    kept = [c for c in splits["train"] if opening(c) not in held]
    if len(kept) < len(splits["train"]):
        logger.info(
            "train: dropped %d conversations that open like a validation/test one", len(splits["train"]) - len(kept)
        )
        if not kept:
            raise UserError(
                "every training conversation opens like a validation/test one, so nothing is left to train on; give "
                "training and evaluation files with different conversations"
            )
    return {**splits, "train": kept}


def sample(conversations: list[list], limit: int | None, seed: int, where: str) -> list[list]:
    if limit is None or limit >= len(conversations):
        return conversations
    logger.info(
        "%s: a seeded sample of %d of %d conversations (raise --max-*-samples for more)",
        where,
        limit,
        len(conversations),
    )
    chosen = np.sort(np.random.default_rng(seed).choice(len(conversations), size=limit, replace=False))
    return [conversations[i] for i in chosen]


def conversation_splits(data, seed: int) -> dict:
    """The conversations of a chat run's `data` settings (common.tasks.chat.ChatData: its files or dataset, the
    prompt/response columns, system prompt and --max-*-samples) -> {"train", "validation", "test"}: lists of checked
    conversations without duplicates, the missing held-out splits carved 80/10/10 by opening, each capped."""
    frames = load_splits(data.train_file, data.validation_file, data.test_file, data.dataset, data.dataset_config)
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_test_samples}
    splits = {}
    for name, frame in frames.items():
        where = f"the {name} data"
        shape = shape_of(frame.columns, data.prompt_column, data.response_column)
        logger.info("%s: %d rows in the %s format", name, len(frame), shape.split(":")[0])
        splits[name] = deduplicate(to_conversations(frame, shape, where, data.system_prompt), name)
        if not splits[name]:
            raise UserError(f"{where} has no conversations; check the file")
    missing = tuple(name for name in ("validation", "test") if name not in splits)
    if missing:
        splits.update(split_by_opening(splits["train"], seed, missing))
    else:
        splits = drop_leaks(splits)
    splits = {name: sample(splits[name], limits[name], seed, name) for name in ("train", "validation", "test")}
    logger.info("conversations: %s", {name: len(c) for name, c in splits.items()})
    return splits
