"""common.serve over real HTTP on a loopback port: round trips, and the server under bad requests and bad conditions:
every error is a 4xx with {"error": one line} (never a 5xx, never a path of the machine), an optional API key, a time
limit on request bodies, clear start-up failures, and a bounded load test. One server per run fixture serves most
tests of the module (each start loads the model)."""

import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import pytest

from common.serve.predict import Predictor
from common.tasks.causal_lm import generate
from common.tasks.classification import classify
from tests.common.serve.conftest import ROOT, serving


@pytest.fixture(scope="module")
def classifier_server(classifier_run):
    with serving(classifier_run, "--max-batch", "4", "--max-request-kb", "2", "--body-timeout", "1") as served:
        yield served


@pytest.fixture(scope="module")
def generator_server(generator_run):
    with serving(generator_run, "--max-batch", "4", "--max-request-kb", "2") as served:
        yield served


def test_http_classification_round_trip(classifier_server, classifier_run):
    call, _ = classifier_server
    status, health = call("GET", "/health")
    assert status == 200 and health["task"] == "classification" and health["labels"] == ["neg", "pos"]
    assert health["model"] == classifier_run.name  # the folder's name, not its path
    status, answer = call("POST", "/predict", {"texts": ["a joy", "a mess"]})
    assert status == 200 and len(answer["predictions"]) == 2
    expected = classify(Predictor(classifier_run), ["a joy", "a mess"])
    assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in expected]
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        [p["probability"] for p in expected], abs=1e-5
    )


def test_the_api_description_is_served_offline(classifier_server):
    # /docs is FastAPI's page, whose scripts come from a CDN (blank offline); the schema it shows is served here
    call, _ = classifier_server
    status, schema = call("GET", "/openapi.json")
    assert status == 200 and {"/health", "/predict", "/generate"} <= set(schema["paths"])


def test_http_generation_round_trip(generator_server, generator_run):
    call, _ = generator_server
    status, answer = call("POST", "/generate", {"prompts": ["line 3"], "max_new_tokens": 4})
    assert status == 200 and answer["generations"] == generate(Predictor(generator_run), ["line 3"], max_new_tokens=4)


LONE_SURROGATE = b'"\\ud800"'
CLASSIFIER_CASES = [
    # (id, method, path, JSON body or raw bytes, status, the error contains)
    ("unknown path", "GET", "/nope", None, 404, "no such endpoint: /nope"),
    ("POST to /health", "POST", "/health", {}, 405, "POST is not answered at /health"),
    ("GET /predict", "GET", "/predict", None, 405, "GET is not answered at /predict"),
    ("DELETE /health", "DELETE", "/health", None, 405, "DELETE is not answered"),
    ("not JSON", "POST", "/predict", b"{not json", 422, "not valid JSON"),
    ("JSON cut short", "POST", "/predict", b'{"texts": ["a"]', 422, "not valid JSON"),
    ("empty body", "POST", "/predict", b"", 422, ""),
    ("null body", "POST", "/predict", b"null", 422, ""),
    ("an array body", "POST", "/predict", b"[]", 422, ""),
    ("no texts", "POST", "/predict", {"texts": []}, 422, "texts: List should have at least 1 item"),
    ("wrong key", "POST", "/predict", {"text": "a joy"}, 422, "texts: Field required"),
    ("texts a string", "POST", "/predict", {"texts": "a joy"}, 422, "texts"),
    ("numbers as texts", "POST", "/predict", {"texts": [1, 2]}, 422, "texts.0"),
    ("null text", "POST", "/predict", {"texts": [None]}, 422, "texts.0"),
    ("empty text", "POST", "/predict", {"texts": [""]}, 422, "is empty; send some text"),
    ("blank text", "POST", "/predict", {"texts": ["   "]}, 422, "is empty; send some text"),
    ("lone surrogate", "POST", "/predict", b'{"texts": [' + LONE_SURROGATE + b"]}", 422, "not valid Unicode"),
    ("bytes that are not UTF-8", "POST", "/predict", b'{"texts": ["\xff\xfe"]}', 422, "not valid UTF-8 (byte 12)"),
    ("a pair for a one-text model", "POST", "/predict", {"texts": [["a", "b"]]}, 400, "reads 1 text(s) per example"),
    ("an empty pair", "POST", "/predict", {"texts": [[]]}, 400, "reads 1 text(s) per example"),
    ("an object as text", "POST", "/predict", {"texts": [{"a": 1}]}, 422, "texts.0"),
    ("too many texts", "POST", "/predict", {"texts": ["a"] * 5}, 400, "5 texts in one request; send at most 4"),
    ("body over the limit", "POST", "/predict", {"texts": ["x" * 3000]}, 413, "over the limit of 2048 bytes"),
    ("JSON nested too deep", "POST", "/predict", b"[" * 1500, 422, ""),
    ("JSON nested too deep, closed", "POST", "/predict", b"[" * 1000 + b"]" * 1000, 422, "nests JSON arrays"),
    ("an integer as a text", "POST", "/predict", {"texts": [5]}, 422, "texts.0: Input should be a valid string"),
    ("NaN as a text", "POST", "/predict", b'{"texts": [NaN]}', 422, ""),
    ("a huge number as a text", "POST", "/predict", b'{"texts": [1e400]}', 422, ""),
    ("generate on a classifier", "POST", "/generate", {"prompts": ["a"]}, 400, "this model classifies text"),
]
GENERATOR_CASES = [
    ("empty prompt", "POST", "/generate", {"prompts": [""]}, 422, "prompts.0: is empty"),
    ("no prompts", "POST", "/generate", {"prompts": []}, 422, "prompts"),
    ("prompts a string", "POST", "/generate", {"prompts": "ROMEO"}, 422, "prompts"),
    ("nested prompts", "POST", "/generate", {"prompts": [["a"]]}, 422, "prompts.0"),
    ("lone surrogate prompt", "POST", "/generate", b'{"prompts": [' + LONE_SURROGATE + b"]}", 422, "not valid Unicode"),
    ("negative seed", "POST", "/generate", {"prompts": ["a"], "seed": -1}, 422, "seed"),
    ("huge seed", "POST", "/generate", {"prompts": ["a"], "seed": 1e20}, 422, "seed"),
    ("NaN temperature", "POST", "/generate", b'{"prompts": ["a"], "temperature": NaN}', 422, "finite number"),
    ("temperature as text", "POST", "/generate", {"prompts": ["a"], "temperature": "hot"}, 422, "temperature"),
    ("negative temperature", "POST", "/generate", {"prompts": ["a"], "temperature": -1}, 422, "temperature"),
    ("no new tokens", "POST", "/generate", {"prompts": ["a"], "max_new_tokens": 0}, 422, "max_new_tokens"),
    ("too many new tokens", "POST", "/generate", {"prompts": ["a"], "max_new_tokens": 10**6}, 422, "max_new_tokens"),
    ("fractional new tokens", "POST", "/generate", {"prompts": ["a"], "max_new_tokens": 1.5}, 422, "max_new_tokens"),
    ("too many prompts", "POST", "/generate", {"prompts": ["a"] * 5}, 400, "5 prompts in one request"),
    ("predict on a generator", "POST", "/predict", {"texts": ["a"]}, 400, "this model generates text"),
    # the tiny Llama reads 256 positions: a prompt past them, or new tokens that pass them with the prompt
    ("a prompt past the positions", "POST", "/generate", {"prompts": ["line " * 300]}, 413, "passes the 256 this"),
    (
        "new tokens past the positions",
        "POST",
        "/generate",
        {"prompts": ["a"], "max_new_tokens": 300},
        422,
        "at most 256",
    ),
    (
        "prompt and new tokens past the positions",
        "POST",
        "/generate",
        {"prompts": ["line " * 100], "max_new_tokens": 200},
        413,
        "with max_new_tokens 200 passes",
    ),
    ("GET /generate", "GET", "/generate", None, 405, "GET is not answered at /generate"),
    ("unknown path on a generator", "GET", "/docs/nope", None, 404, "no such endpoint"),
]


def check_bad_requests(call, cases, run_folder):
    for case, method, path, body, status, expected in cases:
        raw = body if isinstance(body, bytes) else None
        got, answer = call(method, path, body=None if raw is not None else body, raw=raw)
        assert got == status, (case, got, answer)
        assert set(answer) == {"error"} and isinstance(answer["error"], str), (case, answer)
        assert "\n" not in answer["error"] and expected in answer["error"], (case, answer)
        assert "function-" not in answer["error"], (case, answer)  # no pydantic internals
        assert str(run_folder) not in answer["error"] and "/tmp" not in answer["error"], (case, answer)
    assert call("GET", "/health")[0] == 200  # still serving after them all


def test_bad_requests_to_a_classifier_are_4xx_with_one_error_shape(classifier_server, classifier_run):
    check_bad_requests(classifier_server[0], CLASSIFIER_CASES, classifier_run)


def test_bad_requests_to_a_generator_are_4xx_with_one_error_shape(generator_server, generator_run):
    check_bad_requests(generator_server[0], GENERATOR_CASES, generator_run)


def test_a_body_json_cannot_read_is_named_for_what_it_is():
    from common.serve.http import unreadable_json

    assert "holds a number that cannot be read (Exceeds the limit (4300 digits)" in unreadable_json(
        b'{"texts": [' + b"9" * 5000 + b"]}"
    )
    assert "nests JSON arrays or objects too deeply" in unreadable_json(b"[" * 100_000 + b"]" * 100_000)
    assert "not valid UTF-8 (byte 1)" in unreadable_json(b"[\xff]")
    assert unreadable_json(b'{"texts": ["a"]}') is None and unreadable_json(b"{not json") is None


HOSTILE_TEXTS = [
    "<|endoftext|>" * 70,
    "<|im_start|>assistant\n<|im_end|>" * 20,
    "[CLS] [SEP] [PAD] [MASK]",
    "\x00\x01\x1c\u2028\ufeff",
    "\U0001f600" * 200,
    "a" * 1500,
    " ",
    "",
    "-1",
    "{{ raise('x') }}",
]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**63, 10**30, 1e-300, 5e-324, -0.0, 1.5, 1e308]


def random_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(HOSTILE_NUMBERS)
    if kind in (3, 4, 5):
        return (
            rng.choice(HOSTILE_TEXTS)
            if rng.random() < 0.6
            else "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(8)))
        )
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["texts", "prompts", "messages", "role", "content", "x"]): random_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def hostile_bodies(valid: dict, count: int, seed: int = 0):
    """`count` request bodies around a `valid` one: each field replaced, dropped or added, whole random JSON, bytes
    cut short or flipped. Seeded: the same cases every run."""
    import random

    rng = random.Random(seed)
    for _ in range(count):
        kind = rng.randrange(5)
        body = json.loads(json.dumps(valid))
        if kind == 0:
            body[rng.choice(list(body))] = random_value(rng)
        elif kind == 1:
            body.pop(rng.choice(list(body)))
            body[
                rng.choice(["max_new_tokens", "temperature", "seed", "top_p", "n", "stream", "stop", "max_tokens"])
            ] = random_value(rng)
        elif kind == 2:
            body = random_value(rng)
        if kind == 3:
            raw = json.dumps(valid).encode()
            yield raw[: rng.randrange(len(raw))]
        elif kind == 4:
            raw = bytearray(json.dumps(body).encode())
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            yield bytes(raw)
        else:
            yield json.dumps(body).encode()


def fuzz(call, path: str, valid: dict, count: int = 120, budget_s: float = 120.0) -> dict:
    """POST hostile bodies to `path`; asserts none is answered 5xx or in another shape than {"error": one line}."""
    statuses, start = {}, time.perf_counter()
    for body in hostile_bodies(valid, count):
        status, answer = call("POST", path, raw=body)
        assert status < 500, (body[:300], answer)
        if status >= 400:
            assert set(answer) == {"error"} and "\n" not in answer["error"], (body[:300], answer)
        statuses[status] = statuses.get(status, 0) + 1
        assert time.perf_counter() - start < budget_s, f"{sum(statuses.values())} requests took over {budget_s} s"
    return statuses


def test_hostile_json_never_gets_a_server_fault(classifier_server, generator_server):
    for (call, _), path, valid in [
        (classifier_server, "/predict", {"texts": ["a joy", "a mess"]}),
        (generator_server, "/generate", {"prompts": ["line 3"], "max_new_tokens": 3, "temperature": 0.5, "seed": 1}),
    ]:
        statuses = fuzz(call, path, valid)
        assert len(statuses) > 1 and 200 in statuses, statuses  # the set holds good requests and bad ones
        assert call("GET", "/health")[0] == 200


def test_the_bad_request_set_has_49_cases():
    assert len({c[0] for c in CLASSIFIER_CASES + GENERATOR_CASES}) == len(CLASSIFIER_CASES + GENERATOR_CASES) >= 49


def test_a_vanishing_temperature_generates_greedily(generator_server, generator_run):
    call, _ = generator_server
    greedy = generate(Predictor(generator_run), ["line 3"], max_new_tokens=4)
    for temperature in (1e-300, 5e-324, 1e-6):
        status, answer = call(
            "POST", "/generate", {"prompts": ["line 3"], "max_new_tokens": 4, "temperature": temperature}
        )
        assert status == 200 and answer["generations"] == greedy, (temperature, answer)
    status, answer = call(
        "POST", "/generate", {"prompts": ["<|endoftext|>" * 70, "<|im_end|>" * 70], "max_new_tokens": 2}
    )
    assert status == 200 and len(answer["generations"]) == 2


def test_an_api_key_guards_predict_but_not_health(classifier_run):
    key = "k" * 12 + "-secret"
    with serving(classifier_run, "--api-key-env", "SERVE_KEY", env={"SERVE_KEY": key}) as (call, _):
        assert call("GET", "/health")[0] == 200
        status, answer = call("POST", "/predict", {"texts": ["a joy"]})
        assert status == 401 and "needs its API key" in answer["error"]
        assert call("POST", "/predict", {"texts": ["a joy"]}, headers={"X-API-Key": "wrong"})[0] == 401
        assert call("POST", "/predict", {"texts": ["a joy"]}, headers={"Authorization": f"Bearer {key}"})[0] == 200
        assert call("POST", "/predict", {"texts": ["a joy"]}, headers={"X-API-Key": key})[0] == 200


def stalled_upload(port: int) -> socket.socket:
    """A request that announces 100 bytes of body and sends 10."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    sock.sendall(b'{"texts": ')
    return sock


def test_stalled_uploads_time_out_and_do_not_block_others(classifier_server):
    call, port = classifier_server  # started with --body-timeout 1
    stalled = [stalled_upload(port) for _ in range(50)]
    assert call("POST", "/predict", {"texts": ["a joy"]})[0] == 200  # answered while 50 uploads stall
    for sock in stalled:
        sock.settimeout(10)
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b'"error":"the request body did not arrive within 1 seconds' in answer
        sock.close()


def raw_exchange(port: int, *pieces: bytes, pause: float = 0.0, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send `pieces` on one connection, `pause` seconds apart (a slow client), until the server answers; (the
    answer, seconds until it began)."""
    start = time.perf_counter()
    answer, answered = b"", None
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
                sock.settimeout(pause or 0.01)
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                pass
            break
        answered = time.perf_counter() - start
        sock.settimeout(timeout)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, answered


def test_what_is_not_http_gets_the_json_error_shape(classifier_server):
    _, port = classifier_server
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        answer, _ = raw_exchange(port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, answer
        assert json.loads(body) == {"error": "the request is not valid HTTP/1.1; send a well-formed request"}


def test_a_request_trickled_a_byte_at_a_time_times_out_as_a_whole(classifier_server):
    call, port = classifier_server  # --body-timeout 1: for the headers, and for the body
    headers = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    slow_headers = [headers[i : i + 1] for i in range(len(headers))]
    answer, seconds = raw_exchange(port, *slow_headers, pause=0.3)
    assert answer.startswith(b"HTTP/1.1 408") and b"headers did not arrive within 1 seconds" in answer, answer
    body = b'{"texts": ["a joy"]}'.ljust(40)
    answer, seconds = raw_exchange(port, headers, *[body[i : i + 1] for i in range(40)], pause=0.3)
    assert answer.startswith(b"HTTP/1.1 408") and b"body did not arrive within 1 seconds" in answer, answer
    assert seconds < 40 * 0.3  # cut off as a whole, not waited out piece by piece
    assert call("POST", "/predict", {"texts": ["a joy"]})[0] == 200


def serve_command(*words):
    return subprocess.run(
        [sys.executable, "-m", "common.serve", *map(str, words)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_port_or_a_port_in_use_is_one_line_before_serving(classifier_run):
    result = serve_command(classifier_run, "--port", "99999")
    assert result.returncode == 2 and "--port: must be a port from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = serve_command(classifier_run, "--port", port)
    assert result.returncode == 2 and f"port {port} is in use" in result.stderr
    assert "serving" not in result.stdout and "Traceback" not in result.stderr
    result = serve_command(classifier_run, "--api-key-env", "NO_SUCH_VARIABLE_X")
    assert result.returncode == 2 and "must hold a key of 16 characters or more" in result.stderr


def test_load_200_requests_20_at_a_time(classifier_server):
    """Every request answered, and the numbers printed (README: Predict and serve)."""
    call, _ = classifier_server
    texts = [f"a joy {i}" if i % 2 else f"a mess {i}" for i in range(4)]

    def one(_):
        start = time.perf_counter()
        status, answer = call("POST", "/predict", {"texts": texts})
        return status, len(answer.get("predictions", [])), time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(200)))
    elapsed = time.perf_counter() - start
    assert all(status == 200 and n == 4 for status, n, _ in results)
    latencies = sorted(r[2] for r in results)
    report = {
        "requests": 200,
        "concurrency": 20,
        "texts_per_request": 4,
        "requests_per_second": round(200 / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * len(latencies)) - 1], 1),
    }
    print("load test:", json.dumps(report))
