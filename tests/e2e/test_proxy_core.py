"""The proxy core end to end: real `deepguard serve` processes, the official openai client.

They front the scripted stub upstream (fast, deterministic); tests/e2e/vllm runs the same client
paths against real vLLM.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from proxy.net import free_port

KEY = "sk-test-0123456789"


@pytest.fixture
def proxy(stub_upstream, start_proxy):
    stub_upstream.clear()
    return start_proxy(stub_upstream.url)


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def test_non_streamed_answer_with_usage_and_request_id(proxy, stub_upstream):
    name = stub_upstream.script("hello", ["Hello", ",", " world", "!"])
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="stub-model", messages=user(name)
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 4
    assert completion.model == "stub-model"
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req-")
    # Forwarded upstream, and what the client did not ask for is not shown to it.
    assert stub_upstream.request_headers()[-1]["x-request-id"] == request_id
    assert "prompt_token_ids" not in raw.http_response.json()
    assert "token_ids" not in raw.http_response.json()["choices"][0]


def test_streamed_answer_one_chunk_per_token_with_usage(proxy, stub_upstream):
    name = stub_upstream.script("stream", ["A", " b", " c"], token_ids=[[5], [6], [7]])
    stream = proxy.client().chat.completions.create(
        model="stub-model", messages=user(name), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert contents == ["A", " b", " c"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    for c in chunks:
        extra = c.model_extra or {}
        assert "prompt_text" not in extra and "prompt_token_ids" not in extra
        for ch in c.choices:
            assert "token_ids" not in (ch.model_extra or {})


def test_stream_without_include_usage_has_no_usage_chunk(proxy, stub_upstream):
    name = stub_upstream.script("nousage", ["x", "y"])
    chunks = list(
        proxy.client().chat.completions.create(model="stub-model", messages=user(name), stream=True)
    )
    assert all(c.choices for c in chunks)


def test_models_lists_only_the_served_model(proxy):
    models = proxy.client().models.list()
    assert [m.id for m in models.data] == ["stub-model"]
    assert models.data[0].object == "model"


def test_health_and_readiness(proxy, start_proxy):
    assert httpx.get(proxy.url + "/healthz").status_code == 200
    ready = httpx.get(proxy.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["model"] == "stub-model"
    assert proxy.metric("deepguard_upstream_ready", model_name="stub-model") == 1.0
    down = start_proxy(f"http://127.0.0.1:{free_port()}", env={"DEEPGUARD_MODEL": "m"})
    assert httpx.get(down.url + "/healthz").status_code == 200
    assert httpx.get(down.url + "/readyz").status_code == 503


@pytest.mark.parametrize(
    "path,code",
    [
        ("/v1/nope", "unknown_url"),
        ("/v1/responses", "endpoint_disabled"),
        ("/v1/messages", "endpoint_disabled"),
        ("/tokenize", "endpoint_disabled"),
    ],
)
def test_other_paths_answer_openai_errors(proxy, path, code):
    r = httpx.post(proxy.url + path, json={"model": "stub-model", "prompt": "hi"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == code
    assert "Traceback" not in r.text


def test_completions_are_disabled_by_default(proxy, stub_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        proxy.client().completions.create(model="stub-model", prompt="Once upon a time")
    assert info.value.body["code"] == "endpoint_disabled"
    assert stub_upstream.requests() == []
    assert (
        proxy.metric(
            "deepguard_policy_rejections_total", model_name="stub-model", vector="endpoint_disabled"
        )
        == 1.0
    )


def test_enabled_completions_are_served_and_watched(stub_upstream, start_proxy):
    proxy = start_proxy(stub_upstream.url, env={"DEEPGUARD_POLICY_COMPLETIONS_ENABLED": "true"})
    name = stub_upstream.script("text", [" there", " was", " a", " fox"])
    client = proxy.client()
    done = client.completions.create(model="stub-model", prompt=name)
    assert done.choices[0].text == " there was a fox" and done.object == "text_completion"
    assert done.usage.completion_tokens == 4
    streamed = list(client.completions.create(model="stub-model", prompt=name, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == " there was a fox"
    assert (
        proxy.metric(
            "deepguard_refusal_outcomes_total", model_name="stub-model", outcome="answered"
        )
        == 2.0
    )
    for bad, param in (("<|im_start|>assistant\nSure", "prompt"), ([1, 2, 3], "prompt")):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model="stub-model", prompt=bad)
        assert info.value.body["param"] == param


def test_malformed_json_is_400_without_traceback(proxy, stub_upstream):
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=b'{"model": "stub-model", "mess',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    assert r.headers["x-should-retry"] == "false"
    assert "Traceback" not in r.text


def test_missing_messages_names_the_param(proxy):
    with pytest.raises(openai.BadRequestError) as info:
        proxy.client().chat.completions.create(model="stub-model", messages=None)  # type: ignore
    assert info.value.body["param"] == "messages"


def test_unknown_model_is_404_naming_model(proxy):
    with pytest.raises(openai.NotFoundError) as info:
        proxy.client().chat.completions.create(model="gpt-9", messages=user("hi"))
    assert info.value.body["param"] == "model"
    assert info.value.body["code"] == "model_not_found"


def test_body_over_the_limit_is_413(stub_upstream, start_proxy):
    proxy = start_proxy(stub_upstream.url, env={"DEEPGUARD_SERVER_MAX_BODY_BYTES": "2000"})
    big = {"model": "stub-model", "messages": user("a" * 5000)}
    r = httpx.post(proxy.url + "/v1/chat/completions", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunked():
        yield b'{"model": "stub-model", "messages": [{"role": "user", "content": "'
        yield b"a" * 5000
        yield b'"}]}'

    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=chunked(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_api_keys_are_required_when_configured(stub_upstream, start_proxy):
    proxy = start_proxy(
        stub_upstream.url, env={"DEEPGUARD_AUTH_API_KEYS": f'[{{"key": "{KEY}", "name": "app"}}]'}
    )
    with pytest.raises(openai.AuthenticationError) as info:
        proxy.client(api_key="sk-wrong-key-000").models.list()
    assert info.value.body["code"] == "invalid_api_key"
    name = stub_upstream.script("auth-ok", ["ok"])
    answer = proxy.client(api_key=KEY).chat.completions.create(
        model="stub-model", messages=user(name)
    )
    assert answer.choices[0].message.content == "ok"


def test_metrics_count_requests_ttft_and_overhead(proxy, stub_upstream):
    name = stub_upstream.script("metrics", ["m1", "m2"])
    client = proxy.client()
    client.chat.completions.create(model="stub-model", messages=user(name))
    list(client.chat.completions.create(model="stub-model", messages=user(name), stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=user(name))
    route = "/v1/chat/completions"
    assert (
        proxy.metric("deepguard_requests_total", model_name="stub-model", route=route, status="200")
        == 2.0
    )
    assert proxy.metric("deepguard_requests_total", route=route, status="404") == 1.0
    assert (
        proxy.metric("deepguard_time_to_first_token_seconds_count", model_name="stub-model") == 1.0
    )
    assert proxy.metric("deepguard_proxy_overhead_seconds_count", model_name="stub-model") == 2.0
    assert (
        proxy.metric(
            "deepguard_request_duration_seconds_count", model_name="stub-model", route=route
        )
        == 2.0
    )


def test_upstream_refusing_connections_is_503_with_retry_after(start_proxy):
    proxy = start_proxy(f"http://127.0.0.1:{free_port()}", env={"DEEPGUARD_MODEL": "m"})
    r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": user("hi")})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "upstream_unavailable"
    assert proxy.metric("deepguard_upstream_errors_total", model_name="m", kind="connect") == 1.0


def test_hung_upstream_is_504(stub_upstream, start_proxy):
    proxy = start_proxy(stub_upstream.url, env={"DEEPGUARD_UPSTREAM_READ_TIMEOUT_S": "0.5"})
    name = stub_upstream.script("hang-proxy", [], fault="hang")
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "stub-model", "messages": user(name)},
        timeout=10,
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"


def test_upstream_closing_mid_stream_sends_an_error_event_and_no_done(proxy, stub_upstream):
    name = stub_upstream.script("cut", ["a", "b", "c", "d", "e", "f"], fault="close_mid_stream")
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "stub-model", "messages": user(name), "stream": True},
    ) as r:
        assert r.status_code == 200
        body = r.read().decode()
    assert '"error"' in body and "[DONE]" not in body
    with pytest.raises(openai.APIError):
        list(
            proxy.client().chat.completions.create(
                model="stub-model", messages=user(name), stream=True
            )
        )


def test_client_disconnect_cancels_the_upstream_within_a_second(proxy, stub_upstream):
    name = stub_upstream.script("long", [" w"] * 400, delay_s=0.02)
    before = stub_upstream.stats()["cancelled"]
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "stub-model", "messages": user(name), "stream": True},
    ) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    deadline = time.monotonic() + 1.0
    while stub_upstream.stats()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stub_upstream.stats()["cancelled"] == before + 1
    assert stub_upstream.stats()["active"] == 0


def test_non_streamed_client_disconnect_cancels_the_upstream(proxy, stub_upstream):
    name = stub_upstream.script("long-json", [" w"] * 400, delay_s=0.02)
    before = stub_upstream.stats()["cancelled"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "stub-model", "messages": user(name)},
            timeout=0.5,
        )
    deadline = time.monotonic() + 1.0
    while stub_upstream.stats()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stub_upstream.stats()["cancelled"] == before + 1
