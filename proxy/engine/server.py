"""The engine's HTTP app: `create_engine_app(model_path, served_model_name) -> FastAPI`.

Routes: POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics. The model is loaded
before the app exists, so /health answers 200 as soon as the server accepts connections.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.engine.chat import complete_chat, stream_chat
from proxy.engine.protocol import model_not_found, parse_chat_request
from proxy.engine.service import EngineService
from proxy.errors import APIError, bad_request, error_body

log = logging.getLogger("deepguard.engine")


def create_engine_app(model_path: str | Path, served_model_name: str | None = None,
                      dtype: str = "int8") -> FastAPI:
    """Load the model at `model_path` (HF directory or .gguf) and return the serving app.

    `dtype` chooses how the decoder keeps its weights: "float32" (bit-for-bit the model's own
    forward), "bfloat16", or "int8" (weight-only, per output channel; the fastest on CPU).
    """
    import torch

    from proxy.engine.decoders import make_decoder
    from proxy.engine.loading import load_model_and_tokenizer, served_name_for

    model, tokenizer = load_model_and_tokenizer(model_path, torch.float32)
    decoder = make_decoder(model, dtype)
    name = served_model_name or served_name_for(model_path)
    return build_app(EngineService(model, tokenizer, decoder, name))


def build_app(service: EngineService) -> FastAPI:
    """The routes over an already-built service (tests build one from a tiny model)."""
    app = FastAPI(title="deepguard engine", docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.started = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return await _api_error(_, bad_request(str(exc.errors()[0].get("msg"))))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)
        return JSONResponse(error_body("internal engine error", "InternalServerError", None,
                                       "engine_error"), status_code=500)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{
            "id": service.served_model_name, "object": "model", "created": app.state.started,
            "owned_by": "deepguard"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        received_at = time.perf_counter()
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise bad_request("the request body is not valid JSON") from None
        chat = parse_chat_request(body)
        if chat.model is not None and chat.model != service.served_model_name:
            raise model_not_found(chat.model)
        prompt = service.render_prompt(chat)
        service.generation_request(chat, prompt)  # validates max_tokens before streaming
        log.info("chat request: %d prompt tokens, n=%d, stream=%s", len(prompt.token_ids),
                 chat.n, chat.stream)
        if chat.stream:
            return StreamingResponse(stream_chat(service, chat, prompt, received_at),
                                     media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        result = await complete_chat(service, chat, prompt, received_at,
                                     request.is_disconnected)
        if result is None:  # nobody is listening any more
            return Response(status_code=499)
        return JSONResponse(result)

    return app
