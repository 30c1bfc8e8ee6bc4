"""Conversations from the formats people bring: recognized by their columns, checked row by row, split by opening."""

import json

import pandas as pd
import pytest

from common.data.conversations import (
    conversation_splits,
    drop_leaks,
    opening,
    shape_of,
    split_by_opening,
    to_conversations,
)
from common.errors import UserError

ASKED = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]


@pytest.mark.parametrize(
    "row",
    [
        {"messages": ASKED},
        {"messages": json.dumps(ASKED)},  # a csv keeps the list as JSON text
        {"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
        {"instruction": "What is 2+2?", "output": "4"},
        {"instruction": "What is 2+2?", "input": None, "output": "4"},
        {"prompt": "What is 2+2?", "completion": "4"},
        {"prompt": [ASKED[0]], "completion": [ASKED[1]]},  # TRL's conversational prompt/completion
        {"prompt": "What is 2+2?", "response": "4"},
        {"question": "What is 2+2?", "answer": "4", "id": 7},
    ],
)
def test_every_known_format_becomes_the_same_conversation(row):
    frame = pd.DataFrame([row])
    assert to_conversations(frame, shape_of(frame.columns), "the train data") == [ASKED]


def test_alpaca_input_follows_the_instruction_and_named_columns_win():
    alpaca = pd.DataFrame([{"instruction": "Translate to French.", "input": "cat", "output": "chat"}])
    [conversation] = to_conversations(alpaca, shape_of(alpaca.columns), "the train data")
    assert conversation[0]["content"] == "Translate to French.\n\ncat"
    named = pd.DataFrame([{"q": "hi", "a": "hello", "prompt": "ignored", "response": "ignored"}])
    assert shape_of(named.columns, "q", "a") == "pair:q:a"
    with pytest.raises(UserError, match="column 'answer' is not in the data .* --prompt-column / --response-column"):
        shape_of(named.columns, "q", "answer")


def test_a_table_with_no_known_columns_names_the_formats():
    with pytest.raises(UserError, match=r"no conversations in the data \(columns: body, team\); give a `messages`"):
        shape_of(["body", "team"])


def test_a_system_prompt_is_added_where_there_is_none():
    frame = pd.DataFrame({"messages": [ASKED, [{"role": "system", "content": "Be terse."}, *ASKED]]})
    first, second = to_conversations(frame, "messages", "the train data", system_prompt="You are kind.")
    assert first[0] == {"role": "system", "content": "You are kind."} and second[0]["content"] == "Be terse."


@pytest.mark.parametrize(
    "messages, problem",
    [
        (
            [ASKED[0], ASKED[0], ASKED[1]],
            "message 2 is from the user right after the user; user and assistant take turns",
        ),
        ([ASKED[0], {"role": "assistant", "content": "  "}], "message 2 is an empty reply"),
        ([*ASKED, {"role": "user", "content": "and 3+3?"}], "ends on the user, with no reply to learn"),
        ([ASKED[1], ASKED[0]], "message 1 is from the assistant first; user and assistant take turns, user first"),
        ([{"role": "tool", "content": "{}"}, *ASKED], "message 1 has the role 'tool'; use system, user or assistant"),
        ([*ASKED, {"role": "system", "content": "x"}], "message 3 is a system message; only the first"),
        ([], "the conversation has no messages"),
        ([{"role": "system", "content": "be brief"}], "holds only a system message; add the user's message"),
        ("not json", "holds a str, not a list of messages"),
        ([ASKED[0], "4"], "message 2 is a str, not an object with a role and content"),
    ],
)
def test_a_malformed_row_is_one_line_naming_the_row(messages, problem):
    frame = pd.DataFrame({"messages": [ASKED, ASKED, messages]})
    with pytest.raises(UserError) as refused:
        to_conversations(frame, "messages", "the train data")
    message = str(refused.value)
    assert message.startswith("the train data, row 3: ") and problem in message and "\n" not in message


def test_an_empty_cell_of_a_pair_is_named():
    frame = pd.DataFrame({"prompt": ["hi", "yo"], "response": ["hello", None]})
    with pytest.raises(UserError, match="the train data, row 2: 'response' is empty; fix or remove that row"):
        to_conversations(frame, shape_of(frame.columns), "the train data")


def test_held_out_splits_never_share_an_opening_with_training():
    """The same question with another answer in training would make the test easy: split by opening."""
    conversations = [
        [{"role": "user", "content": f"question {i % 40}"}, {"role": "assistant", "content": f"answer {i}"}]
        for i in range(200)
    ]
    splits = split_by_opening(conversations, seed=0)
    openings = {name: {opening(c) for c in split} for name, split in splits.items()}
    assert not openings["train"] & (openings["validation"] | openings["test"])
    assert not openings["validation"] & openings["test"]
    assert sum(len(split) for split in splits.values()) == 200 and 15 <= len(splits["test"]) <= 30
    assert split_by_opening(conversations, seed=0) == splits  # seeded


def test_given_splits_lose_training_conversations_that_open_like_a_held_out_one():
    asked_again = [ASKED[0], {"role": "assistant", "content": "four"}]
    other = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    kept = drop_leaks({"train": [asked_again, other], "validation": [], "test": [ASKED]})
    assert kept["train"] == [other]


def test_splits_are_deduplicated_capped_and_carved(tmp_path):
    from common.tasks.chat import ChatData

    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(50)]
    pd.DataFrame(rows + rows[:5]).to_csv(tmp_path / "qa.csv", index=False)
    splits = conversation_splits(ChatData(train_file=str(tmp_path / "qa.csv"), max_train_samples=20), seed=1)
    assert len(splits["train"]) == 20 and len(splits["validation"]) == len(splits["test"]) == 5


def test_a_datasets_dataset_in_the_messages_shape_reads_like_a_file(tmp_path):
    """What a hub dataset gives (loaded here from a local folder, as `datasets` loads a hub repository): nested
    messages come back as arrays of structs, and read the same."""
    from common.tasks.chat import ChatData

    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(40)
    ]
    (tmp_path / "chats").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "chats" / "train.parquet")
    splits = conversation_splits(ChatData(dataset=str(tmp_path / "chats")), seed=0)
    assert sum(len(s) for s in splits.values()) == 40
    assert splits["train"][0] == [{"role": "user", "content": splits["train"][0][0]["content"]},
                                  {"role": "assistant", "content": splits["train"][0][1]["content"]}]  # fmt: skip
