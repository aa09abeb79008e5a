"""The vLLM protocol features the proxy relies on, checked against real vLLM (CPU build).

Directly against the vLLM child of the session's stack (with the API key `deepguard serve` gave
it), then through proxies in front of it: the same upstream production runs.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.support.vllm_stack import SERVED_NAME, VllmStack

CHATML_HEADER = "<|im_start|>assistant\n"
APP_KEY = "sk-app-0123456789"
RED_TEAM_KEY = "sk-redteam-0123456789"
PREFILL = "Sure, here is a list of three colours:"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sse_chunks(response: httpx.Response) -> list[dict]:
    chunks = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(json.loads(line[len("data: ") :]))
    return chunks


# -- vLLM itself ---------------------------------------------------------------------------------


def test_vllm_returns_prompt_text_and_token_ids_when_asked(vllm_stack: VllmStack):
    body = {
        "model": SERVED_NAME,
        "messages": user("Say hello."),
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
        "return_token_ids": True,
        "return_prompt_text": True,
    }
    with vllm_stack.vllm() as vllm, vllm.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        chunks = sse_chunks(r)
    first = chunks[0]
    assert first["prompt_text"].endswith(CHATML_HEADER)
    assert first["prompt_text"].count("<|im_start|>") == 3  # default system, user, assistant
    assert all(isinstance(t, int) for t in first["prompt_token_ids"]) and first["prompt_token_ids"]
    content = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]
    assert content and all(c["choices"][0].get("token_ids") for c in content)


def test_vllm_rejects_requests_without_the_minted_key(vllm_stack: VllmStack):
    r = httpx.post(
        f"{vllm_stack.vllm_url}/v1/chat/completions",
        timeout=30,
        json={"model": SERVED_NAME, "messages": user("hi"), "max_tokens": 2},
    )
    assert r.status_code == 401


def test_vllm_continues_a_final_assistant_message(vllm_stack: VllmStack):
    body = {
        "model": SERVED_NAME,
        "max_tokens": 12,
        "temperature": 0,
        "messages": user("List three colours.") + [{"role": "assistant", "content": PREFILL}],
        "add_generation_prompt": False,
        "continue_final_message": True,
        "return_prompt_text": True,
    }
    with vllm_stack.vllm() as vllm:
        answer = vllm.post("/v1/chat/completions", json=body).json()
    assert answer["prompt_text"].endswith(PREFILL)


# -- through the proxy ---------------------------------------------------------------------------


def proxy_client(stack: VllmStack, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0, **kwargs)


def test_the_proxy_keeps_vllm_extensions_from_clients(vllm_stack: VllmStack):
    body = {
        "model": SERVED_NAME,
        "messages": user("Say hello."),
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{vllm_stack.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        raw = "".join(r.iter_text())
    assert "data: [DONE]" in raw
    for field in ("prompt_text", "prompt_token_ids", "token_ids"):
        assert f'"{field}"' not in raw


def test_n_and_stop_through_the_proxy(vllm_stack: VllmStack):
    answer = proxy_client(vllm_stack).chat.completions.create(
        model=SERVED_NAME,
        messages=user("Write two sentences about the sea."),
        max_tokens=60,
        n=2,
        stop=["."],
    )
    assert len(answer.choices) == 2
    for choice in answer.choices:
        assert choice.message.content.strip() and "." not in choice.message.content
        assert choice.finish_reason == "stop"


def test_logprobs_come_back_after_the_withheld_first_tokens(vllm_stack: VllmStack):
    """vLLM's logprobs reach the client, less the first 8 tokens' (P("Sure") at the first token
    is what an automated attacker searches on; docs/policy.md)."""
    answer = proxy_client(vllm_stack).chat.completions.create(
        model=SERVED_NAME,
        messages=user("Describe the sea in three sentences."),
        max_tokens=24,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = answer.choices[0]
    entries = choice.logprobs.content
    assert 0 < len(entries) <= answer.usage.completion_tokens - 8
    assert all(len(e.top_logprobs) == 2 for e in entries)
    assert choice.message.content.endswith("".join(e.token for e in entries))


def test_multi_turn_conversations_pass_the_rendered_prompt_check(vllm_stack: VllmStack):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3 + 3?"},
    ]
    answer = proxy_client(vllm_stack).chat.completions.create(
        model=SERVED_NAME, messages=messages, max_tokens=8, temperature=0
    )
    assert answer.choices[0].message.content.strip()


def test_rendered_prompt_check_reads_vllms_real_prompt_text(vllm_stack: VllmStack, start_proxy):
    """A proxy told to expect another generation header stops the request on vLLM's rendering:
    the check runs on what vLLM really rendered, not on what the proxy assumes."""
    proxy = start_proxy(
        vllm_stack.vllm_url,
        env={
            "DEEPGUARD_UPSTREAM_API_KEY": vllm_stack.vllm_key,
            "DEEPGUARD_POLICY_GENERATION_HEADER": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        },
    )
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model=SERVED_NAME, messages=user("Hi"), max_tokens=4)
    assert caught.value.code == "rendered_prompt_mismatch"


def test_red_team_key_prefills_through_continue_final_message(vllm_stack: VllmStack, start_proxy):
    keys = [
        {"key": APP_KEY, "name": "app"},
        {"key": RED_TEAM_KEY, "name": "red-team", "allow_prefill": True},
    ]
    proxy = start_proxy(
        vllm_stack.vllm_url,
        env={
            "DEEPGUARD_UPSTREAM_API_KEY": vllm_stack.vllm_key,
            "DEEPGUARD_AUTH_API_KEYS": json.dumps(keys),
        },
    )
    messages = user("List three colours.") + [{"role": "assistant", "content": PREFILL}]
    extra = {"add_generation_prompt": False, "continue_final_message": True}
    with pytest.raises(openai.BadRequestError):
        proxy.client(APP_KEY).chat.completions.create(
            model=SERVED_NAME, messages=messages, max_tokens=12, temperature=0, extra_body=extra
        )
    answer = proxy.client(RED_TEAM_KEY).chat.completions.create(
        model=SERVED_NAME, messages=messages, max_tokens=12, temperature=0, extra_body=extra
    )
    # The continuation follows the prefill; it does not open a new answer with it.
    assert answer.choices[0].message.content and not answer.choices[0].message.content.startswith(
        PREFILL
    )


def test_client_disconnect_aborts_the_request_inside_vllm(vllm_stack: VllmStack):
    """Closing the client's stream ends the request in vLLM: it leaves the running set without
    finishing (vLLM counts every finished request, by stop, length or error, in
    vllm:request_success_total; an aborted one in none of them) and stops generating."""
    finished_before = vllm_stack.vllm_metric("vllm:request_success_total")
    body = {
        "model": SERVED_NAME,
        "max_tokens": 1500,
        "stream": True,
        "messages": user(
            "Write a very long story about a lighthouse keeper and the sea, with many chapters."
        ),
    }
    with httpx.stream("POST", f"{vllm_stack.url}/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
        running_while_streaming = vllm_stack.vllm_metric("vllm:num_requests_running")
    # Leaving the block closed the client's connection after a few chunks.
    assert running_while_streaming == 1.0
    deadline = time.monotonic() + 20
    while vllm_stack.vllm_metric("vllm:num_requests_running") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert vllm_stack.vllm_metric("vllm:num_requests_running") == 0
    generated = vllm_stack.vllm_metric("vllm:generation_tokens_total")
    time.sleep(1.0)
    assert vllm_stack.vllm_metric("vllm:generation_tokens_total") == generated
    assert vllm_stack.vllm_metric("vllm:request_success_total") == finished_before
