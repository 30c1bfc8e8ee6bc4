"""An HTTP server for a saved run (FastAPI on uvicorn): `make serve MODEL=outputs/bert_classification`.

  GET  /health     {"status": "ok", "task": "classification", "labels": ["neg", "pos"], ...}
  POST /predict    {"texts": ["a joy", "a mess"]}  ->  {"predictions": [{"label", "probability", "probabilities"}]}
                   (sentence-pair models: {"texts": [["first", "second"], ...]})
  POST /generate   {"prompts": ["ROMEO:"], "max_new_tokens": 40, "temperature": 0}  ->  {"generations": ["..."]}

Bad requests get a 4xx status and {"error": "one line saying what to change"}; bodies over --max-request-kb
get 413. Requests are answered one at a time: the model uses every CPU core for each batch.
"""

from __future__ import annotations

import argparse
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from common.config.cli import RecipeParser, positive_number
from common.runtime import run_cli
from common.serve.predict import Predictor


class PredictRequest(BaseModel):
    texts: list[str | list[str]] = Field(min_length=1)


class GenerateRequest(BaseModel):
    prompts: list[str] = Field(min_length=1)
    max_new_tokens: int = Field(default=60, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    seed: int = 42


class LimitRequestSize:
    """ASGI middleware: 413 for a body over `limit` bytes, whether announced in Content-Length or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.too_large(scope, receive, send)
        body, more = b"", True  # read the body here (a streamed one has no Content-Length), then hand it on
        while more:
            message = await receive()
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

    async def too_large(self, scope, receive, send):
        message = f"the request body is over the limit of {self.limit} bytes; send fewer or shorter texts per request"
        await JSONResponse({"error": message}, status_code=413)(scope, receive, send)


def create_app(predictor: Predictor, max_batch: int = 64, max_request_bytes: int = 1_000_000):
    app = FastAPI(title=f"lm-recipes: {predictor.folder.name}", version="1")
    model_lock = threading.Lock()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return error(422, 'the request body is not valid JSON; send e.g. {"texts": ["a joy"]}')
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return error(422, f"{where}: {first['msg']}")

    @app.get("/health")
    def health():
        return {
            "status": "ok",
            "model": str(predictor.folder),
            "task": predictor.task,
            "labels": predictor.labels,
            "max_batch": max_batch,
        }

    @app.post("/predict")
    def predict(request: PredictRequest):
        if predictor.task != "classification":
            return error(400, 'this model generates text; POST to /generate with {"prompts": [...]}')
        if len(request.texts) > max_batch:
            return error(400, f"{len(request.texts)} texts in one request; send at most {max_batch}")
        width = len(predictor.text_columns)
        texts = [tuple(t) if isinstance(t, list) else t for t in request.texts]
        if any((len(t) if isinstance(t, tuple) else 1) != width for t in texts):
            shape = "a string" if width == 1 else f"a list of {width} strings"
            return error(400, f"this model reads {width} text(s) per example: each item of texts must be {shape}")
        with model_lock:
            return {"predictions": predictor.classify(texts)}

    @app.post("/generate")
    def generate(request: GenerateRequest):
        if predictor.task != "generation":
            return error(400, 'this model classifies text; POST to /predict with {"texts": [...]}')
        if len(request.prompts) > max_batch:
            return error(400, f"{len(request.prompts)} prompts in one request; send at most {max_batch}")
        with model_lock:
            generations = predictor.generate(request.prompts, request.max_new_tokens, request.temperature, request.seed)
        return {"generations": generations}

    return LimitRequestSize(app, max_request_bytes)


def main(argv=None) -> None:
    import uvicorn

    parser = RecipeParser(
        prog="python -m common.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a recipe's output folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--max-batch", type=positive_number(int), default=64, help="most texts or prompts per request")
    parser.add_argument(
        "--max-request-kb", type=positive_number(int), default=1024, help="largest request body, in KiB"
    )
    args = parser.parse_args(argv)
    app = create_app(Predictor(args.model), args.max_batch, args.max_request_kb * 1024)
    print(
        f"serving {args.model} on http://{args.host}:{args.port} (GET /health, POST /predict or /generate)", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    run_cli(main)
