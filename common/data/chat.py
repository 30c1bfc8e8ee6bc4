"""Conversations as training tokens: the chat template, which tokens are trained, packing, batching.

What is trained is found by rendering each conversation prefix by prefix with the chat template, for any template
(with or without `{% generation %}` markers): the tokens of assistant turn i are those between the conversation
rendered up to turn i with the generation prompt and the conversation rendered through turn i. Each of those
renderings must tokenize to a prefix of the whole conversation; where one does not (a template that renders an
opening differently once a reply follows, tokens that merge across the boundary), the run refuses in one line
instead of guessing. A trained turn ends with the template's end-of-turn token and whatever the template writes
after it (ChatML's newline), as TRL's completion mask does, so the model learns to stop even where the pad token
is the end-of-turn token: padding is masked by position, never by token id.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import datasets
import numpy as np
import torch

from common.data.tokens import cached
from common.errors import UserError, first_line

logger = logging.getLogger(__name__)

IGNORE = -100
# ChatML, for a model whose tokenizer has no chat template (--chat-template chatml): the format SmolLM2, Qwen and
# many others use, with no default system message
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_TOKENS = ["<|im_start|>", "<|im_end|>"]
PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def set_chat_template(tokenizer, choice: str, model_name: str) -> list[str]:
    """--chat-template auto (the tokenizer's own), chatml, or a Jinja file; returns the tokens it added to the
    vocabulary (ChatML's, where the tokenizer lacks them), for which the model's embeddings must grow."""
    added = []
    if choice == "auto":
        if not tokenizer.chat_template:
            raise UserError(
                f"the tokenizer of '{model_name}' has no chat template (a base model); pass --chat-template chatml "
                f"(adds ChatML's <|im_start|>/<|im_end|> tokens) or --chat-template FILE.jinja"
            )
    elif choice == "chatml":
        added = [token for token in CHATML_TOKENS if token not in tokenizer.get_vocab()]
        if added:
            tokenizer.add_tokens(added, special_tokens=True)
            logger.info("--chat-template chatml: added %s to the vocabulary (their embeddings are trained)", added)
        tokenizer.chat_template = CHATML
    else:
        path = Path(choice)
        if not path.is_file():
            raise UserError(f"--chat-template '{choice}' is neither auto, chatml nor a Jinja template file")
        try:
            tokenizer.chat_template = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"--chat-template '{choice}' is not valid UTF-8 (byte {e.start}); re-save it as UTF-8"
            ) from None
        except OSError as e:
            raise UserError(f"--chat-template '{choice}' cannot be read ({first_line(e)}); check the file") from None
    render(tokenizer, PROBE)  # a template that cannot render a question and its reply fails here, in one line
    return added


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as e:  # noqa: BLE001 - jinja's TemplateError, or what a template raises itself
        raise UserError(f"the chat template refused a conversation ({first_line(e)})") from None


def ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of rendered texts; the template writes the special tokens itself, so none are added."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def end_of_turn(tokenizer) -> int:
    """The token that ends an assistant turn in this template (ChatML's <|im_end|>, Llama 3's <|eot_id|>, ...): the
    last special token the template writes for a reply. Generation stops at it."""
    prompt, full = ids(tokenizer, [render(tokenizer, PROBE[:1], True), render(tokenizer, PROBE)])
    special = set(tokenizer.all_special_ids)  # and tokens added as special ones (ChatML's, on a base model)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if getattr(token, "special", False)}
    found = [token for token in full[len(prompt) :] if token in special]
    if not found:
        raise UserError(
            "the chat template ends a reply with no special token, so a model could not learn where to stop; use "
            "--chat-template chatml or a template that closes each turn"
        )
    return found[-1]


def stop_tokens(tokenizer) -> list[int]:
    """What generation stops at: the template's end of turn, and the end-of-text token where it is another."""
    eos = tokenizer.eos_token_id
    return sorted({end_of_turn(tokenizer), *([eos] if eos is not None else [])})


# ---------------------------------------------------------------- what is trained


def encode(tokenizer, conversations: list[list], train_on: str, where: str) -> dict:
    """{"input_ids", "labels"} for each conversation: labels are the ids where trained, else -100 (see the module
    docstring). `train_on`: assistant (every reply), last (the last reply), all (every token)."""
    wholes, prefixes, plan = [], [], []
    for number, conversation in enumerate(conversations, start=1):
        try:
            wholes.append(render(tokenizer, conversation))
        except UserError as e:  # Gemma's and Mistral's templates refuse a system message, for one
            raise UserError(f"{where}, conversation {number}: {e}; fix it, or choose --chat-template") from None
        turns = [i for i, message in enumerate(conversation) if message["role"] == "assistant"]
        chosen = [] if train_on == "all" else turns if train_on == "assistant" else turns[-1:]
        spans = []
        for turn in chosen:
            opening, through = render(tokenizer, conversation[:turn], True), render(tokenizer, conversation[: turn + 1])
            if not through.startswith(opening) or conversation[turn]["content"].strip() not in through[len(opening) :]:
                raise UserError(
                    f"{where}, conversation {number}: the chat template does not render reply {len(spans) + 1} "
                    f"after its prompt as it renders the prompt alone, so the reply's tokens cannot be told apart; "
                    f"use --chat-template chatml or a template file, or --train-on all"
                )
            spans.append((len(prefixes), len(prefixes) + 1))
            prefixes += [opening, through]
        plan.append(spans)
    whole_ids, prefix_ids = ids(tokenizer, wholes), ids(tokenizer, prefixes)
    labels = []
    for number, (tokens, spans) in enumerate(zip(whole_ids, plan), start=1):
        row = list(tokens) if train_on == "all" else [IGNORE] * len(tokens)
        for start_at, end_at in spans:
            start, end = prefix_ids[start_at], prefix_ids[end_at]
            if tokens[: len(start)] != start or tokens[: len(end)] != end:
                raise UserError(
                    f"{where}, conversation {number}: a reply's first or last token merges with the text around it "
                    f"in this tokenizer, so the trained tokens cannot be told apart safely; use --chat-template "
                    f"chatml or a template file that ends each turn with a special token, or --train-on all"
                )
            row[len(start) : len(end)] = tokens[len(start) : len(end)]
        labels.append(row)
    return {"input_ids": whole_ids, "labels": labels}


def check_masks(encoded: dict, train_on: str, where: str) -> float:
    """The share of tokens trained, logged; a UserError for a data set that trains no token, or every token while
    only replies were asked for (a template whose replies could not be found)."""
    total = sum(len(row) for row in encoded["input_ids"])
    share = trained_share(encoded)
    trained = round(share * total)
    if trained == 0:
        raise UserError(f"{where}: no token would be trained (every reply masked); check --train-on and the template")
    if train_on != "all" and trained == total:
        raise UserError(f"{where}: every token would be trained, prompts too, with --train-on {train_on}")
    logger.info("%s: %d of %d tokens trained (%.1f%%, --train-on %s)", where, trained, total, 100 * share, train_on)
    return share


def trained_share(columns: dict) -> float:
    trained = sum(sum(label != IGNORE for label in row) for row in columns["labels"])
    return trained / max(1, sum(len(row) for row in columns["input_ids"]))


def marked(tokenizer, input_ids: list[int], labels: list[int]) -> str:
    """A conversation as text with its trained tokens between ⟦ and ⟧: what a person checks the masks by."""
    pieces, inside = [], False
    for token, label in zip(input_ids, labels):
        trained = label != IGNORE
        if trained != inside:
            pieces.append("⟦" if trained else "⟧")
            inside = trained
        pieces.append(tokenizer.decode([token]))
    return "".join(pieces) + ("⟧" if inside else "")


def encoded_splits(tokenizer, splits: dict, train_on: str) -> dict:
    """encode() each split (cached on disk with the template and --train-on) and check its masks."""
    encoded = {}
    for name, conversations in splits.items():
        texts = [[json.dumps(c, ensure_ascii=False) for c in conversations]]
        settings = {"train_on": train_on, "template": tokenizer.chat_template}
        encoded[name] = cached(
            "chat", tokenizer, texts, settings, lambda c=conversations, n=name: encode(tokenizer, c, train_on, n)
        )
        check_masks(encoded[name], train_on, f"the {name} data")
    return encoded


# ---------------------------------------------------------------- lengths and packing

AUTO_KEEPS_WHOLE = 0.995  # share of the training conversations --max-length auto keeps
AUTO_AT_MOST = 2048


def fit_length(encoded: dict, max_length: int | str, positions: int | None) -> int:
    """--max-length: auto -> the length that keeps AUTO_KEEPS_WHOLE of the training conversations whole, rounded
    up to 8, at most AUTO_AT_MOST and what the model reads; a number as it is."""
    if isinstance(max_length, int):
        return max_length
    lengths = np.array([len(row) for row in encoded["train"]["input_ids"]])
    fits = 8 * math.ceil(float(np.quantile(lengths, AUTO_KEEPS_WHOLE, method="higher")) / 8)
    chosen = min(fits, positions or AUTO_AT_MOST, AUTO_AT_MOST)
    logger.info(
        "--max-length auto: %d tokens (%.1f%% of the training conversations fit)",
        chosen,
        100 * (lengths <= chosen).mean(),
    )
    return chosen


def drop_long(encoded: dict, splits: dict, max_length: int) -> tuple[dict, dict]:
    """(encoded, splits) without the conversations longer than max_length: they are left out, not cut, since a cut
    one trains a reply without its end (the model would not learn to stop there) or without its question."""
    kept_encoded, kept_splits = {}, {}
    for name, columns in encoded.items():
        keep = [i for i, row in enumerate(columns["input_ids"]) if len(row) <= max_length]
        if len(keep) < len(columns["input_ids"]):
            left_out = len(columns["input_ids"]) - len(keep)
            logger.warning("%s: left out %d conversations longer than --max-length %d", name, left_out, max_length)
        if not keep:
            raise UserError(f"every {name} conversation is longer than --max-length {max_length}; raise it")
        kept_encoded[name] = {column: [values[i] for i in keep] for column, values in columns.items()}
        kept_splits[name] = [splits[name][i] for i in keep]
    return kept_encoded, kept_splits


def pack(columns: dict, max_length: int) -> dict:
    """Whole conversations into rows of at most max_length tokens (first fit, longest first), with position ids
    that restart at each conversation: given those and no attention mask, transformers keeps each conversation
    from attending to the others in its row. A conversation's first label is never trained (it would be predicted
    from the one before it)."""
    order = sorted(range(len(columns["input_ids"])), key=lambda i: -len(columns["input_ids"][i]))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        length = len(columns["input_ids"][i])
        slot = next((r for r, free in enumerate(room) if free >= length), None)
        if slot is None:
            rows.append([])
            room.append(max_length)
            slot = len(rows) - 1
        rows[slot].append(i)
        room[slot] -= length
    packed = {"input_ids": [], "labels": [], "position_ids": []}
    for members in rows:
        packed["input_ids"].append([t for i in members for t in columns["input_ids"][i]])
        packed["labels"].append([IGNORE if p == 0 else t for i in members for p, t in enumerate(columns["labels"][i])])
        packed["position_ids"].append([p for i in members for p in range(len(columns["input_ids"][i]))])
    used = sum(len(row) for row in packed["input_ids"])
    logger.info(
        "packed %d conversations into %d rows of up to %d tokens (%.0f%% full)",
        len(order),
        len(rows),
        max_length,
        100 * used / max(1, len(rows) * max_length),
    )
    return packed


def chat_datasets(encoded: dict, packing: bool, max_length: int) -> dict:
    """A datasets.Dataset per split; with packing, the training split packed (evaluation stays a conversation per
    row, so that each one's loss is its own)."""
    out = {}
    for name, columns in encoded.items():
        columns = {k: v for k, v in columns.items() if k in ("input_ids", "labels")}
        if packing and name == "train":
            columns = pack(columns, max_length)
        out[name] = datasets.Dataset.from_dict(columns)
    return out


class ChatCollator:
    """Pads a batch to its longest row: input ids with the pad token, labels with -100 and attention 0, by position
    (the pad token may be the end-of-turn token, which is trained). Packed rows (position_ids) get no attention mask:
    their position ids keep the conversations apart."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None | str = "auto"):
        if pad_to_multiple_of == "auto":  # as common.data.tokens.padding_collator: tensor cores want it, CPUs do not
            pad_to_multiple_of = 8 if torch.cuda.is_available() else None
        self.pad, self.multiple = pad_token_id, pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict:
        longest = max(len(row["input_ids"]) for row in rows)
        if self.multiple:
            longest = self.multiple * math.ceil(longest / self.multiple)
        packed = "position_ids" in rows[0]
        batch = {"input_ids": [], "labels": [], "attention_mask" if not packed else "position_ids": []}
        for row in rows:
            gap = longest - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad] * gap)
            batch["labels"].append(list(row["labels"]) + [IGNORE] * gap)
            if packed:  # the padding is a sequence of its own, attended by nothing real
                batch["position_ids"].append(list(row["position_ids"]) + list(range(gap)))
            else:
                batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * gap)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}
