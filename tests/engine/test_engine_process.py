"""The real `deepguard engine` process on the default GGUF model, through the official client.

Uses the session fixture `engine_server` from tests/conftest.py (started once per session).
"""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(engine_server):
    return openai.OpenAI(base_url=engine_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model_id(client):
    return client.models.list().data[0].id


def metric(engine_server, name: str, **labels) -> float:
    text = httpx.get(engine_server.url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} not exported")


def test_models_lists_the_gguf_stem(model_id):
    assert model_id == "SmolLM2-135M-Instruct.Q4_1"


def test_non_streamed_answer_with_usage(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_tokens=30)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_answer_matches_and_reports_usage(client, model_id):
    whole = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                           max_tokens=30)
    stream = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                            max_tokens=30, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_token_ids_and_prompt_text_extensions(client, model_id):
    extra = {"return_token_ids": True, "return_prompt_text": True}
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0,
                                       max_tokens=20, extra_body=extra)
    assert r.prompt_text.endswith("<|im_start|>assistant\n")
    assert len(r.prompt_token_ids) == r.usage.prompt_tokens
    assert len(r.choices[0].token_ids) == r.usage.completion_tokens
    chunks = list(client.chat.completions.create(
        model=model_id, messages=QUESTION, temperature=0, max_tokens=20, stream=True,
        extra_body=extra))
    assert chunks[0].prompt_token_ids == r.prompt_token_ids
    assert chunks[0].prompt_text == r.prompt_text
    streamed_ids = [i for c in chunks[1:] for i in c.choices[0].token_ids]
    assert streamed_ids == r.choices[0].token_ids


def test_continue_final_message_prefills(client, model_id):
    prefill = "Sure, here is a poem about the sea:"
    r = client.chat.completions.create(
        model=model_id, temperature=0, max_tokens=10,
        messages=QUESTION + [{"role": "assistant", "content": prefill}],
        extra_body={"continue_final_message": True, "add_generation_prompt": False,
                    "return_prompt_text": True})
    assert r.prompt_text.endswith("<|im_start|>assistant\n" + prefill)
    assert r.choices[0].message.content


def test_concurrent_requests_get_their_own_answers(client, model_id):
    prompts = ["Name three colours.", "What is 12 times 12?"]

    def ask(prompt):
        r = client.chat.completions.create(model=model_id, temperature=0, max_tokens=25,
                                           messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content

    alone = [ask(p) for p in prompts]
    together: list[str | None] = [None, None]
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(prompts[i])))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert together == alone


def test_closing_a_stream_cancels_generation(engine_server, model_id):
    name = "deepguard_engine_requests_total"
    before = metric(engine_server, name, outcome="cancelled")
    stream_client = openai.OpenAI(base_url=engine_server.url + "/v1", api_key="unused",
                                  max_retries=0)
    stream = stream_client.chat.completions.create(
        model=model_id, max_tokens=4000, stream=True, temperature=0,
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
        messages=[{"role": "user", "content": "Count from 1 to 5000, one number per line."},
                  {"role": "assistant", "content": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"}])
    for seen, _ in enumerate(stream):
        if seen == 4:
            break
    stream.close()
    stream_client.close()
    deadline = time.monotonic() + 20
    while metric(engine_server, name, outcome="cancelled") == before:
        assert time.monotonic() < deadline, "the closed stream was never counted as cancelled"
        time.sleep(0.05)
    tokens = metric(engine_server, "deepguard_engine_generated_tokens_total")
    time.sleep(1.0)
    assert metric(engine_server, "deepguard_engine_generated_tokens_total") == tokens
    assert metric(engine_server, "deepguard_engine_running_requests") == 0


def test_abandoned_non_streamed_request_is_cancelled(engine_server, model_id):
    name = "deepguard_engine_requests_total"
    before = metric(engine_server, name, outcome="cancelled")
    # Greedy and prefilled with a long count, so the answer is long every time (a sampled answer
    # sometimes ended within the client's timeout and nothing was left to cancel).
    body = {"model": model_id, "max_tokens": 4000, "temperature": 0,
            "continue_final_message": True, "add_generation_prompt": False,
            "messages": [{"role": "user", "content": "Count from 1 to 5000, one number per line."},
                         {"role": "assistant", "content": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(engine_server.url + "/v1/chat/completions", json=body, timeout=1.0)
    deadline = time.monotonic() + 20
    while metric(engine_server, name, outcome="cancelled") == before:
        assert time.monotonic() < deadline, "the abandoned request was never cancelled"
        time.sleep(0.05)
    tokens = metric(engine_server, "deepguard_engine_generated_tokens_total")
    time.sleep(1.0)
    assert metric(engine_server, "deepguard_engine_generated_tokens_total") == tokens
