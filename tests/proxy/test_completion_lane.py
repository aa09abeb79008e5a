"""The completion lane (proxy/completion_lane.py): the two completion routes are served outside
FastAPI's middlewares, so the lane itself must route exactly and turn every failure into the same
OpenAI error the rest of the app gives."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse

from proxy.app import create_app
from proxy.completion_lane import CompletionLane
from proxy.config import Settings
from proxy.errors import APIError
from proxy.metrics import Metrics

MODEL = "stub-model"


def asgi_call(app, scope: dict) -> list[dict]:
    """One ASGI call with an empty body; the messages the app sent."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}


class Recorder:
    """An ASGI app that says who answered."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope, receive, send) -> None:
        await PlainTextResponse(self.name)(scope, receive, send)


def lane_with(route) -> CompletionLane:
    return CompletionLane(Recorder("framework"), {"/v1/chat/completions": route})


async def route_answers(request):
    return PlainTextResponse("lane")


def body_of(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize(
    "method, path, answered_by",
    [
        ("POST", "/v1/chat/completions", b"lane"),
        ("GET", "/v1/chat/completions", b"framework"),  # FastAPI's 405
        ("POST", "/v1/chat/completions/", b"framework"),  # FastAPI's redirect
        ("POST", "/v1/models", b"framework"),
    ],
)
def test_only_exact_posts_to_a_lane_route_skip_the_framework(method, path, answered_by):
    assert body_of(asgi_call(lane_with(route_answers), http_scope(method, path))) == answered_by


def test_other_scope_types_go_to_the_framework():
    seen = []

    async def framework(scope, receive, send):
        seen.append(scope["type"])

    lane = CompletionLane(framework, {"/v1/chat/completions": route_answers})
    asyncio.run(lane({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def app_with_metrics():
    """What the lane's error path reads from `scope["app"]`: the state's metrics."""
    app = Starlette()
    app.state.metrics = Metrics()
    return app


def requests_counted(app, status: str) -> float:
    labels = {"model_name": "unknown", "route": "/v1/chat/completions", "status": status}
    return app.state.metrics.registry.get_sample_value("deepguard_requests_total", labels) or 0


def test_an_api_error_in_a_lane_route_is_its_openai_error():
    async def refuses(request):
        raise APIError(400, "no prefill", param="messages[1]", code="prefill", headers={"x-a": "b"})

    app = app_with_metrics()
    sent = asgi_call(lane_with(refuses), http_scope("POST", "/v1/chat/completions") | {"app": app})
    start = sent[0]
    assert start["status"] == 400 and (b"x-a", b"b") in start["headers"]
    assert b'"param":"messages[1]"' in body_of(sent) and b'"code":"prefill"' in body_of(sent)
    assert requests_counted(app, "400") == 1


def test_an_unexpected_error_in_a_lane_route_is_a_logged_500_without_its_text(caplog):
    async def breaks(request):
        raise RuntimeError("secret internals")

    app = app_with_metrics()
    scope = http_scope("POST", "/v1/chat/completions") | {"app": app, "state": {"request_id": "r1"}}
    with caplog.at_level(logging.ERROR, logger="deepguard"):
        sent = asgi_call(lane_with(breaks), scope)
    assert sent[0]["status"] == 500
    body = body_of(sent)
    assert b'"code":"internal_error"' in body and b"secret" not in body
    assert "r1" in caplog.text and "secret internals" in caplog.text  # the traceback is logged
    assert requests_counted(app, "500") == 1


def test_the_app_serves_chat_through_the_lane_and_errors_keep_the_request_id(stub_upstream):
    """End to end in process: a failure deep in the chat service reaches the client as an
    OpenAI 500 with the request id header, and the route is still documented."""

    async def main():
        app = create_app(
            Settings(model=MODEL, upstream={"url": stub_upstream.url, "probe_interval_s": 0})
        )
        async with app.router.lifespan_context(app):

            async def broken_handle(*args, **kwargs):
                raise KeyError("boom")

            app.state.chat.handle = broken_handle
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
            ) as client:
                body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
                failed = await client.post("/v1/chat/completions", json=body)
                schema = (await client.get("/openapi.json")).json()
        return failed, schema

    failed, schema = asyncio.run(main())
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
    assert failed.headers["x-request-id"].startswith("req-")
    assert "post" in schema["paths"]["/v1/chat/completions"]
