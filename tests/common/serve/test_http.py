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
    ("bytes that are not UTF-8", "POST", "/predict", b'{"texts": ["\xff\xfe"]}', 422, "not valid UTF-8 JSON"),
    ("a pair for a one-text model", "POST", "/predict", {"texts": [["a", "b"]]}, 400, "reads 1 text(s) per example"),
    ("an empty pair", "POST", "/predict", {"texts": [[]]}, 400, "reads 1 text(s) per example"),
    ("an object as text", "POST", "/predict", {"texts": [{"a": 1}]}, 422, "texts.0"),
    ("too many texts", "POST", "/predict", {"texts": ["a"] * 5}, 400, "5 texts in one request; send at most 4"),
    ("body over the limit", "POST", "/predict", {"texts": ["x" * 3000]}, 413, "over the limit of 2048 bytes"),
    ("JSON nested too deep", "POST", "/predict", b"[" * 1500, 422, ""),
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
        assert str(run_folder) not in answer["error"] and "/tmp" not in answer["error"], (case, answer)
    assert call("GET", "/health")[0] == 200  # still serving after them all


def test_bad_requests_to_a_classifier_are_4xx_with_one_error_shape(classifier_server, classifier_run):
    check_bad_requests(classifier_server[0], CLASSIFIER_CASES, classifier_run)


def test_bad_requests_to_a_generator_are_4xx_with_one_error_shape(generator_server, generator_run):
    check_bad_requests(generator_server[0], GENERATOR_CASES, generator_run)


def test_the_bad_request_set_has_44_cases():
    assert len({c[0] for c in CLASSIFIER_CASES + GENERATOR_CASES}) == len(CLASSIFIER_CASES + GENERATOR_CASES) >= 44


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
