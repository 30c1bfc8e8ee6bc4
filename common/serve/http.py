"""An HTTP server for a saved run (FastAPI on uvicorn): `make serve MODEL=outputs/bert_classification`.

  GET  /health     {"status": "ok", "model": "bert_classification", "task": "classification", "labels": [...]}
  POST /predict    {"texts": ["a joy", "a mess"]}  ->  {"predictions": [{"label", "probability", "probabilities"}]}
                   (sentence-pair models: {"texts": [["first", "second"], ...]})
  POST /generate   {"prompts": ["ROMEO:"], "max_new_tokens": 40, "temperature": 0}  ->  {"generations": ["..."]}

Every error, whatever its status, is {"error": "one line saying what to change"}: 4xx for a bad request (413 for a
body over --max-request-kb, 408 for one that does not arrive within --body-timeout seconds, 401 without the API
key), 5xx only for a fault of the server. Responses name no file or folder of the machine.
With --api-key-env VAR, /predict and /generate need the key in VAR as `Authorization: Bearer KEY` or `X-API-Key: KEY`
(/health stays open for load balancers). Requests are answered one at a time: the model uses every CPU core.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hmac
import logging
import os
import socket
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                message = f"the request body did not arrive within {self.timeout:g} seconds; send it whole"
                return await error_response(408, message)(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self.too_large(scope, receive, send)
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
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return error_response(422, f"{where}: {first['msg'].removeprefix('Value error, ')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return error_response(
                404, f"no such endpoint: {request.url.path}; use /health, {' or '.join(r.path for r in task.routes)}"
            )
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not answered at {request.url.path}; see GET /health")
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # bytes that are not UTF-8
            return error_response(422, f"the request body is not valid UTF-8 JSON; send e.g. {example}")
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
        "--body-timeout", type=positive_number(float), default=30.0, help="seconds to wait for a request's body"
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
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])


if __name__ == "__main__":
    run_cli(main)
