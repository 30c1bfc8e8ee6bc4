"""An HTTP server for a saved run (FastAPI on uvicorn): `make serve MODEL=outputs/bert_classification`.

  GET  /health     {"status": "ok", "model": "bert_classification", "task": "classification", "labels": [...]}
  POST /predict    {"texts": ["a joy", "a mess"]}  ->  {"predictions": [{"label", "probability", "probabilities"}]}
                   (sentence-pair models: {"texts": [["first", "second"], ...]})
  POST /generate   {"prompts": ["ROMEO:"], "max_new_tokens": 40, "temperature": 0}  ->  {"generations": ["..."]}

Every error, whatever its status, is {"error": "one line saying what to change"}: 4xx for a bad request (413 for a
body over --max-request-kb, 408 for headers or a body that do not arrive within --body-timeout seconds, 401 without
the API key, 400 for what is not HTTP), 5xx only for a fault of the server. Responses name no file or folder of the machine.
With --api-key-env VAR, /predict and /generate need the key in VAR as `Authorization: Bearer KEY` or `X-API-Key: KEY`
(/health stays open for load balancers). Requests are answered one at a time: the model uses every CPU core.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hmac
import json
import logging
import os
import socket
import threading

import h11
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from common import tasks
from common.config.cli import RecipeParser, positive_number
from common.errors import UserError
from common.runtime import run_cli
from common.serve.predict import Predictor
from common.tasks import Refusal, Route

logger = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Gate:
    """ASGI middleware in front of the app: the API key, a body size limit (413) whether the size is announced in
    Content-Length or not, and a time limit on reading the body (408), so stalled uploads do not pile up."""

    def __init__(self, app, limit: int, timeout: float, api_key: str | None = None):
        self.app, self.limit, self.timeout, self.api_key = app, limit, timeout, api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key and scope["path"] != "/health" and not self.authorized(headers):
            return await error_response(
                401, "this server needs its API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )(scope, receive, send)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.too_large(scope, receive, send)
        body, more = b"", True  # read the body here (a streamed one has no Content-Length), then hand it on
        deadline = asyncio.get_running_loop().time() + self.timeout  # for the whole body, not each piece of it
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - asyncio.get_running_loop().time(), 0))
            except TimeoutError:
                message = f"the request body did not arrive within {self.timeout:g} seconds; send it whole"
                return await error_response(408, message)(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self.too_large(scope, receive, send)
        scope[BODY] = body  # for the error handler, should FastAPI fail to read it as JSON
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def authorized(self, headers: dict) -> bool:
        given = headers.get(b"x-api-key", b"")
        bearer = headers.get(b"authorization", b"")
        if bearer.lower().startswith(b"bearer "):
            given = bearer[7:].strip()
        return hmac.compare_digest(given, self.api_key.encode())

    async def too_large(self, scope, receive, send):
        message = f"the request body is over the limit of {self.limit} bytes; send fewer or shorter texts per request"
        await error_response(413, message)(scope, receive, send)


BODY = "lm_recipes.body"  # the request body, as Gate read it, in the ASGI scope


def unreadable_json(body: bytes) -> str | None:
    """What keeps a body that looks like JSON from being read (bytes that are not UTF-8, nesting too deep, a number
    too long), in words; None for a readable one or for plain malformed JSON, which FastAPI names itself. Asked only
    when FastAPI's own reading failed: a good request's body is parsed once."""
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"the request body is not valid UTF-8 (byte {e.start}); send UTF-8 JSON"
    try:
        json.loads(text)
    except RecursionError:
        return "the request body nests JSON arrays or objects too deeply; send a flat request"
    except json.JSONDecodeError:
        return None
    except ValueError as e:  # Python's cap on the digits of an integer (CVE-2020-10735)
        return f"the request body holds a number that cannot be read ({str(e).split(';')[0]}); send a shorter one"
    return None


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with two changes: a request that is not valid HTTP is answered in the
    {"error": ...} shape of every other answer (uvicorn writes plain text), and a connection whose request headers
    have not all arrived within `header_timeout` seconds is answered 408 and closed (uvicorn waits for ever, so a
    client sending a byte a second holds a connection as long as it likes)."""

    header_timeout = 30.0
    _header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)
        elif not waiting and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._answer(408, f"the request headers did not arrive within {self.header_timeout:g} seconds")

    def send_400_response(self, msg: str) -> None:
        self._answer(400, "the request is not valid HTTP/1.1; send a well-formed request")

    def _answer(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        try:
            for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # a response had begun: nothing more can be said on this connection
            pass
        self.transport.close()


def create_app(
    predictor: Predictor,
    max_batch: int = 64,
    max_request_bytes: int = 1_000_000,
    body_timeout: float = 30.0,
    api_key: str | None = None,
):
    app = FastAPI(title=f"lm-recipes: {predictor.folder.name}", version="1")
    model_lock = threading.Lock()
    task = predictor.task
    example = task.routes[0].example if task.routes else "{}"

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return error_response(422, f"the request body is not valid JSON; send e.g. {example}")
        # the path to the bad value, without pydantic's names of its validators (function-after[_text(), str])
        parts = [part for part in first["loc"] if part != "body" and (isinstance(part, int) or part.isidentifier())]
        where = ".".join(map(str, parts)) or "body"
        return error_response(422, f"{where}: {first['msg'].removeprefix('Value error, ')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return error_response(
                404, f"no such endpoint: {request.url.path}; use /health, {' or '.join(r.path for r in task.routes)}"
            )
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not answered at {request.url.path}; see GET /health")
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # JSON's reader raised, not on syntax
            problem = unreadable_json(request.scope.get(BODY, b""))
            return error_response(422, problem or f"the request body is not valid UTF-8 JSON; send e.g. {example}")
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception):
        logger.exception("error answering %s", request.url.path)  # the details go to the server's log only
        return error_response(500, f"the server failed on this request ({type(exc).__name__}); see the server log")

    @app.get("/health")
    def health():
        return {
            "status": "ok",
            "model": predictor.folder.name,
            "task": task.name,
            **task.describe(predictor),
            "max_batch": max_batch,
        }

    # this run's routes answer; another kind's routes say where to go instead (a classifier asked to /generate)
    ours = {route.path: route for route in task.routes}
    others = {route.path: route for other in tasks.every() for route in other.routes if route.path not in ours}
    for path, route in [*ours.items(), *others.items()]:
        app.post(path)(_endpoint(route, predictor, model_lock, max_batch, path in ours))

    return Gate(app, max_request_bytes, body_timeout, api_key)


def _endpoint(route: Route, predictor: Predictor, model_lock: threading.Lock, max_batch: int, ours: bool):
    """The handler of POST route.path: the run's task answers (one request at a time: the model uses every core),
    or, for a route of another kind of run, one line that says where to go."""

    def answer(request):
        if not ours:
            return error_response(400, f"this model {predictor.task.does}; {predictor.task.hint()}")
        try:
            with model_lock:
                return route.answer(predictor, request, max_batch)
        except Refusal as refusal:
            return error_response(refusal.status, str(refusal))

    answer.__annotations__ = {"request": route.request}  # what FastAPI reads the body as
    return answer


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535 (0: any free one), got {port}")
    return port


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound now: a port in use or an address not on this machine is one line, before any
    'serving on' is printed."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use on {host}; pass another --port (0: any free one)") from None
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); check --host and --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def main(argv=None) -> None:
    import uvicorn

    parser = RecipeParser(
        prog="python -m common.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a recipe's output folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=port_number, default=8000, help="port to listen on (0: any free one)")
    parser.add_argument("--max-batch", type=positive_number(int), default=64, help="most texts or prompts per request")
    parser.add_argument(
        "--max-request-kb", type=positive_number(int), default=1024, help="largest request body, in KiB"
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_number(float),
        default=30.0,
        help="seconds to wait for a request's headers, and for its body",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require the API key held in this environment variable (a key on the command line would show in ps)",
    )
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if len(api_key) < 16:
            raise UserError(f"--api-key-env {args.api_key_env}: that variable must hold a key of 16 characters or more")
    sock = listening_socket(args.host, args.port)  # first: a port in use should not wait for the model to load
    predictor = Predictor(args.model)
    app = create_app(predictor, args.max_batch, args.max_request_kb * 1024, args.body_timeout, api_key)
    port = sock.getsockname()[1]
    routes = " or ".join(route.path for route in predictor.task.routes)
    print(f"serving {args.model} on http://{args.host}:{port} (GET /health, POST {routes})", flush=True)
    protocol = type("Protocol", (Protocol,), {"header_timeout": args.body_timeout})
    uvicorn.Server(uvicorn.Config(app, log_level="info", http=protocol)).run(sockets=[sock])


if __name__ == "__main__":
    run_cli(main)
