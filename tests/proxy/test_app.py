"""The app factory and its error mapping, in process (httpx's ASGI transport in front of
`create_app`, the scripted stub behind it): one endpoint object per route, every failure an
OpenAI-shaped error with our own words, no 5xx for a client's mistake."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from proxy.aggregate import aggregate, aggregate_text
from proxy.app import create_app
from proxy.config import Settings
from proxy.endpoints import CHAT, COMPLETIONS
from proxy.net import free_port

MODEL = "stub-model"


def settings(upstream_url: str, **groups) -> Settings:
    return Settings(model=MODEL, upstream={"url": upstream_url, "probe_interval_s": 0}, **groups)


def run(settings: Settings, scenario):
    async def main():
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8000", timeout=30
            ) as client:
                return await scenario(client)

    return asyncio.run(main())


def post(path: str, **kwargs):
    async def scenario(client):
        return await client.post(path, **kwargs)

    return scenario


def assert_openai_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code, error
    return error


def test_each_endpoint_is_one_object():
    assert (CHAT.route, COMPLETIONS.route) == ("/v1/chat/completions", "/v1/completions")
    assert (CHAT.relay_mode, COMPLETIONS.relay_mode) == ("chat", "text")
    assert (CHAT.assemble, COMPLETIONS.assemble) == (aggregate, aggregate_text)
    assert CHAT.checks_rendered_prompt and CHAT.keeps_history
    assert not COMPLETIONS.checks_rendered_prompt and not COMPLETIONS.keeps_history


def test_invalid_json_is_a_400_that_must_not_be_retried(stub_upstream):
    r = run(
        settings(stub_upstream.url),
        post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
    )
    error = assert_openai_error(r, 400, "invalid_json")
    assert error["type"] == "invalid_request_error" and r.headers["x-should-retry"] == "false"


def test_a_body_over_the_limit_is_a_413(stub_upstream):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = run(
        settings(stub_upstream.url, server={"max_body_bytes": 1000}),
        post("/v1/chat/completions", json=body),
    )
    assert_openai_error(r, 413, "request_too_large")


def test_unknown_paths_and_methods_are_openai_errors(stub_upstream):
    async def scenario(client):
        return await client.get("/v1/nothing"), await client.get("/v1/chat/completions")

    missing, wrong_method = run(settings(stub_upstream.url), scenario)
    assert_openai_error(missing, 404, "unknown_url")
    assert_openai_error(wrong_method, 405, "method_not_allowed")


def test_an_unreachable_upstream_is_reported_in_our_words():
    r = run(
        settings(f"http://127.0.0.1:{free_port()}"),
        post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        ),
    )
    assert 500 <= r.status_code < 600 and r.status_code != 500, r.text
    assert "127.0.0.1" not in r.json()["error"]["message"]


def test_completions_are_refused_unless_enabled(stub_upstream):
    r = run(
        settings(stub_upstream.url), post("/v1/completions", json={"model": MODEL, "prompt": "hi"})
    )
    assert_openai_error(r, 400, "endpoint_disabled")


@pytest.mark.parametrize("stream", [False, True])
def test_completions_when_enabled_are_relayed_as_text(stub_upstream, stream):
    name = stub_upstream.script("text-answer", ["Bread", " rises."])
    stub_upstream.clear()
    enabled = settings(stub_upstream.url, policy={"completions_enabled": True})
    r = run(
        enabled, post("/v1/completions", json={"model": MODEL, "prompt": name, "stream": stream})
    )
    assert r.status_code == 200, r.text
    if stream:
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert {c["object"] for c in chunks} == {"text_completion"}
        text = "".join(ch.get("text", "") for c in chunks for ch in c["choices"])
    else:
        body = r.json()
        assert body["object"] == "text_completion" and body["model"] == MODEL
        text = body["choices"][0]["text"]
    assert text == "Bread rises."
    sent = stub_upstream.requests()[-1]
    # Always streamed upstream; no rendered prompt is asked for (that check is chat's).
    assert sent["stream"] is True and "return_prompt_text" not in sent


def test_chat_asks_the_upstream_for_the_rendered_prompt(stub_upstream):
    name = stub_upstream.script("chat-answer", ["Hello"])
    stub_upstream.clear()
    r = run(
        settings(stub_upstream.url),
        post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": name}]},
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    assert r.json()["choices"][0]["message"]["content"] == "Hello"
    sent = stub_upstream.requests()[-1]
    assert sent["stream"] is True and sent["return_prompt_text"] is True
