"""The HTTP app over a tiny model, in process: response shapes, n, errors, queueing, cancel."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.engine.decoders import make_decoder
from proxy.engine.generation import GenerationRequest
from proxy.engine.sampling import SamplingParams
from proxy.engine.server import build_app
from proxy.engine.service import EngineService

USER = [{"role": "user", "content": "Hello world"}]


class SlowDecoder:
    """Wraps a decoder so each step takes a while: lets tests act in the middle of a generation."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def prefill(self, ids):
        return self.inner.prefill(ids)

    def step(self, token):
        time.sleep(self.delay)
        return self.inner.step(token)


@pytest.fixture()
def service(tiny):
    model, tokenizer = tiny
    svc = EngineService(model, tokenizer, make_decoder(model, "float32"), "tiny")
    yield svc
    svc.close()


def post(service, body: dict) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as client:
            return await client.post("/v1/chat/completions", json=body)
    return asyncio.run(go())


def get(service, path: str) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as client:
            return await client.get(path)
    return asyncio.run(go())


def sse_chunks(response: httpx.Response) -> list[dict]:
    events = [line[len("data: "):] for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def metric(service, name: str, **labels) -> float:
    for family in text_string_to_metric_families(get(service, "/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} not exported")


def test_non_streamed_answer_with_token_ids_and_prompt_text(service):
    r = post(service, {"messages": USER, "temperature": 0, "max_tokens": 12,
                       "return_token_ids": True, "return_prompt_text": True})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["logprobs"] is None
    assert choice["finish_reason"] in ("stop", "length")
    tokenizer = service.tokenizer
    assert body["prompt_text"] == tokenizer.decode(body["prompt_token_ids"])
    assert body["prompt_text"].endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(choice["token_ids"], skip_special_tokens=True) == \
        choice["message"]["content"]
    assert body["usage"] == {"prompt_tokens": len(body["prompt_token_ids"]),
                             "completion_tokens": len(choice["token_ids"]),
                             "total_tokens": len(body["prompt_token_ids"]) +
                             len(choice["token_ids"])}


def test_extensions_are_absent_unless_asked(service):
    body = post(service, {"messages": USER, "max_tokens": 3}).json()
    assert "prompt_token_ids" not in body and "prompt_text" not in body
    assert "token_ids" not in body["choices"][0]


def test_stream_has_one_chunk_per_token_and_usage(service):
    r = post(service, {"messages": USER, "temperature": 0, "max_tokens": 10, "stream": True,
                       "return_token_ids": True, "return_prompt_text": True,
                       "stream_options": {"include_usage": True}})
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(r)
    first, tokens, usage = chunks[0], chunks[1:-1], chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "prompt_token_ids" in first and "prompt_text" in first
    assert all("prompt_token_ids" not in c and "prompt_text" not in c for c in chunks[1:])
    assert all(len(c["choices"][0]["token_ids"]) == 1 for c in tokens)
    assert tokens[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(tokens)
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in tokens)
    whole = post(service, {"messages": USER, "temperature": 0, "max_tokens": 10}).json()
    assert streamed == whole["choices"][0]["message"]["content"]


def test_n_choices_are_indexed_and_seeded(service):
    body = {"messages": USER, "n": 3, "seed": 11, "max_tokens": 8, "temperature": 1.0}
    first = post(service, body).json()
    again = post(service, body).json()
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert first["choices"] == again["choices"]
    chunks = sse_chunks(post(service, {**body, "stream": True}))
    assert {c["choices"][0]["index"] for c in chunks} == {0, 1, 2}
    for index in range(3):
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                       if c["choices"][0]["index"] == index)
        assert text == first["choices"][index]["message"]["content"]


def test_continue_final_message_prefills_the_answer(service):
    messages = USER + [{"role": "assistant", "content": "The quick"}]
    body = post(service, {"messages": messages, "continue_final_message": True,
                          "add_generation_prompt": False, "max_tokens": 4,
                          "return_prompt_text": True}).json()
    assert body["prompt_text"].endswith("<|im_start|>assistant\nThe quick")


@pytest.mark.parametrize("body, param", [
    ({"messages": USER, "temperature": -1}, "temperature"),
    ({"messages": USER, "top_p": 0}, "top_p"),
    ({"messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"messages": USER, "max_tokens": 100000}, "max_tokens"),
    ({"messages": USER, "n": 0}, "n"),
    ({"messages": []}, "messages"),
    ({"messages": USER, "add_generation_prompt": True, "continue_final_message": True},
     "add_generation_prompt"),
])
def test_bad_input_is_a_400_naming_the_parameter(service, body, param):
    r = post(service, body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert "Traceback" not in r.text


def test_unknown_model_is_a_404(service):
    r = post(service, {"messages": USER, "model": "other"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_models_and_health(service):
    data = get(service, "/v1/models").json()
    assert data["object"] == "list"
    assert data["data"][0]["id"] == "tiny" and data["data"][0]["object"] == "model"
    assert get(service, "/health").status_code == 200
    assert metric(service, "deepguard_engine_requests_total", outcome="finished") == 0


def test_leaving_a_stream_cancels_its_generation(tiny):
    model, tokenizer = tiny
    service = EngineService(model, tokenizer, SlowDecoder(make_decoder(model, "float32"), 0.02),
                            "tiny")
    ids = tokenizer.apply_chat_template(USER, add_generation_prompt=True)["input_ids"]
    job = GenerationRequest(ids, 200, SamplingParams(temperature=1.0), ())

    async def consume_three_then_leave():
        cancelled = threading.Event()
        events = service.generate(job, 1, time.perf_counter(), cancelled)
        seen = 0
        async for _ in events:
            seen += 1
            if seen == 3:
                break
        await events.aclose()
        for _ in range(100):
            if metric_value("cancelled") == 1:
                break
            await asyncio.sleep(0.02)

    def metric_value(outcome):
        return service.metrics.registry.get_sample_value(
            "deepguard_engine_requests_total", {"model_name": "tiny", "outcome": outcome})

    asyncio.run(consume_three_then_leave())
    assert metric_value("cancelled") == 1
    tokens = service.metrics.registry.get_sample_value(
        "deepguard_engine_generated_tokens_total", {"model_name": "tiny"})
    time.sleep(0.2)
    assert tokens == service.metrics.registry.get_sample_value(
        "deepguard_engine_generated_tokens_total", {"model_name": "tiny"})
    assert tokens < 10
    service.close()


def test_requests_queue_one_at_a_time_without_mixing(tiny):
    model, tokenizer = tiny
    service = EngineService(model, tokenizer, SlowDecoder(make_decoder(model, "float32"), 0.005),
                            "tiny")
    bodies = [{"messages": [{"role": "user", "content": text}], "temperature": 0,
               "max_tokens": 15} for text in ("Hello world", "The lazy dog", "Stop strings")]
    alone = [post(service, b).json()["choices"][0]["message"]["content"] for b in bodies]

    async def together():
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=b)
                                          for b in bodies))

    answers = [r.json()["choices"][0]["message"]["content"] for r in asyncio.run(together())]
    assert answers == alone
    service.close()
