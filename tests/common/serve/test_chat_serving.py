"""A saved chat run answering: OpenAI-style POST /v1/chat/completions over real HTTP (the shape existing clients read,
4xx with one line for what it cannot answer, never 5xx), and predict on a messages JSONL or a text per line."""

import json

import pytest

from common.run import from_argv
from common.serve.predict import Predictor
from common.tasks.chat import chat
from recipes import chat_sft
from tests.common.serve.conftest import serving
from tests.common.serve.test_http import check_bad_requests, fuzz
from tests.common.serve.test_predict_and_serve import predict

HELLO = [{"role": "user", "content": "what is 3 plus one?"}]


@pytest.fixture(scope="module")
def chat_run(tiny_llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat-serving")
    rows = [{"question": f"what is {i} plus one?", "answer": str(i + 1)} for i in range(40)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    words = ["--model", str(tiny_llama), "--train-file", str(folder / "qa.jsonl"), "--output-dir", str(folder / "run")]
    from_argv(
        chat_sft.main, chat_sft.DEFAULTS, [*words, "--epochs", "1", "--max-new-tokens", "8", "--precision", "fp32"]
    )
    return folder / "run"


@pytest.fixture(scope="module")
def chat_server(chat_run):
    with serving(chat_run, "--max-request-kb", "4") as served:
        yield served


def test_chat_completions_answer_in_openai_shape(chat_server, chat_run):
    call, _ = chat_server
    body = {"model": "anything", "messages": HELLO, "max_tokens": 6, "user": "x", "presence_penalty": 0}
    status, answer = call("POST", "/v1/chat/completions", body)  # fields it does not use (model, user, ...) are fine
    assert status == 200 and answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    [choice] = answer["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length") and isinstance(answer["created"], int)
    usage = answer["usage"]
    assert (
        usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] and usage["completion_tokens"] <= 6
    )
    assert choice["message"]["content"] == chat(Predictor(chat_run), [HELLO], 6).texts[0]  # greedy: the same reply
    status, health = call("GET", "/health")
    assert status == 200 and health["task"] == "chat"


CHAT_CASES = [
    ("no messages", "POST", "/v1/chat/completions", {}, 422, "messages: Field required"),
    ("empty messages", "POST", "/v1/chat/completions", {"messages": []}, 422, "messages: List should have at least 1"),
    ("a tool message", "POST", "/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, 422, "role"),
    ("empty content", "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": " "}]}, 422, "is empty"),
    ("ends on the assistant", "POST", "/v1/chat/completions", {"messages": [*HELLO, {"role": "assistant", "content": "4"}]},
     422, "end on the user message to reply to"),
    ("system after user", "POST", "/v1/chat/completions", {"messages": [*HELLO, {"role": "system", "content": "x"}]},
     422, "only the first message may be one"),
    ("streaming", "POST", "/v1/chat/completions", {"messages": HELLO, "stream": True}, 400, "streaming is not served"),
    ("two choices", "POST", "/v1/chat/completions", {"messages": HELLO, "n": 2}, 400, "one choice per request"),
    ("NaN temperature", "POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "a"}], '
     b'"temperature": NaN}', 422, "temperature"),
    ("temperature too high", "POST", "/v1/chat/completions", {"messages": HELLO, "temperature": 3}, 422, "temperature"),
    ("no tokens", "POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 0}, 422, "max_tokens"),
    ("a million tokens", "POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 10**6}, 422, "max_tokens"),
    ("messages a string", "POST", "/v1/chat/completions", {"messages": "hi"}, 422, "messages"),
    ("past the model's positions", "POST", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "word " * 600}]}, 413, "this model reads at most 256"),
    ("predict on a chat model", "POST", "/predict", {"texts": ["a"]}, 400, "this model chats; POST to /v1/chat/completions"),
    ("GET the completions", "GET", "/v1/chat/completions", None, 405, "GET is not answered"),
]  # fmt: skip


def test_bad_chat_requests_are_4xx_with_one_error_shape(chat_server, chat_run):
    check_bad_requests(chat_server[0], CHAT_CASES, chat_run)


def test_a_vanishing_temperature_is_greedy_not_a_server_fault(chat_server):
    call, _ = chat_server
    status, answer = call("POST", "/v1/chat/completions", {"messages": HELLO, "temperature": 1e-300, "max_tokens": 4})
    greedy = call("POST", "/v1/chat/completions", {"messages": HELLO, "temperature": 0, "max_tokens": 4})[1]
    assert status == 200 and answer["choices"][0]["message"] == greedy["choices"][0]["message"]


def test_hostile_json_never_gets_a_server_fault(chat_server):
    call, _ = chat_server
    valid = {"messages": [{"role": "system", "content": "be brief"}, *HELLO], "max_tokens": 4, "temperature": 0.7}
    statuses = fuzz(call, "/v1/chat/completions", valid)
    assert len(statuses) > 1 and 200 in statuses, statuses


def test_predict_replies_to_a_messages_jsonl_and_to_a_message_per_line(chat_run, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": 7, "messages": HELLO}) + "\n")
    result = predict(
        chat_run, "--input", tmp_path / "in.jsonl", "--max-new-tokens", "4", "--output", tmp_path / "a.jsonl"
    )
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert row["id"] == 7 and row["messages"] == HELLO and isinstance(row["reply"], str) and "stopped" in row
    lines = predict(chat_run, "--max-new-tokens", "4", stdin="what is 3 plus one?\nhello\n")
    assert lines.returncode == 0 and len(lines.stdout.splitlines()) == 2
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"messages": [*HELLO, {"role": "assistant", "content": "4"}]}) + "\n"
    )
    bad = predict(chat_run, "--input", tmp_path / "bad.jsonl")
    assert bad.returncode == 2 and "the input, row 1: the messages end on the assistant" in bad.stderr
    assert "Traceback" not in bad.stderr
