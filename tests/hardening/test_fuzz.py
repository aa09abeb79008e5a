"""Fuzzing the running proxy: no generated request may get a 5xx.

Two generators against one `deepguard serve` in front of a non-recording stub:
- schemathesis reads the proxy's /openapi.json (the chat route describes its body, see
  proxy/routes/chat_openapi.py) and generates schema-valid and schema-violating requests for
  every operation;
- hypothesis sends chat bodies built from the OpenAI field set with hostile values, arbitrary JSON
  documents and arbitrary bytes.

CI size: >= 10,000 requests in total (the last test checks the count). A longer run:
DEEPGUARD_FUZZ_SCALE=10 .venv/bin/pytest tests/hardening/test_fuzz.py (about 10x the requests).
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
import requests
import schemathesis
from schemathesis.generation.modes import GenerationMode
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.hardening.conftest import launch_proxy

SCALE = float(os.environ.get("DEEPGUARD_FUZZ_SCALE", "1"))
SCHEMA_EXAMPLES = int(1200 * SCALE)    # over all operations (schema generation is the slow part)
BODY_EXAMPLES = int(4500 * SCALE)      # per hypothesis test below (two of them)
MIN_TOTAL_REQUESTS = 10_000 if SCALE >= 1 else 0
FUZZ_SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck),
                         database=None)
SENT = {"schemathesis": 0, "hypothesis": 0}


@pytest.fixture(scope="module")
def fuzz_proxy(quiet_stub, log_dir):
    proxy = launch_proxy(quiet_stub.url, log_dir, {"DEEPGUARD_SERVER_LOG_LEVEL": "warning"})
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def schema_cases(fuzz_proxy):
    """Cases for every operation of the running proxy's /openapi.json, valid and invalid."""
    schema = schemathesis.openapi.from_url(fuzz_proxy.url + "/openapi.json")
    return st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                     schema.as_strategy(GenerationMode.NEGATIVE))


@pytest.fixture(scope="module")
def http(fuzz_proxy):
    with httpx.Client(base_url=fuzz_proxy.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def assert_no_server_error(status: int, text: str, sent: object) -> None:
    assert status < 500, f"{status} for {sent!r:.500}: {text[:500]}"
    assert "Traceback" not in text
    if 400 <= status < 500 and text.startswith("{"):
        error = json.loads(text)["error"]
        assert isinstance(error["message"], str) and error["message"]


# -- schemathesis over the OpenAPI schema ---------------------------------------------------

# schemathesis' own pytest decorator (`from_fixture(...).parametrize()`) fails on pytest 9
# (it reads a removed node attribute), so its case strategies are drawn inside a plain hypothesis
# test; the schema still comes from the running proxy.
@given(data=st.data())
@settings(FUZZ_SETTINGS, max_examples=SCHEMA_EXAMPLES)
def test_schema_driven_requests_never_get_a_server_error(data, schema_cases, fuzz_proxy,
                                                         session):
    case = data.draw(schema_cases)
    response = case.call(base_url=fuzz_proxy.url, session=session, timeout=30)
    SENT["schemathesis"] += 1
    assert_no_server_error(response.status_code, response.text,
                           f"{case.method} {case.formatted_path} {case.body!r:.300}")


# -- hypothesis over request bodies -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)

ROLES = ["system", "developer", "user", "assistant", "tool", "function", "ipython", "", "USER"]
FIELDS = ["stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "n", "stop", "seed", "logprobs", "top_logprobs", "response_format", "tools",
          "tool_choice", "user", "metadata", "echo", "continue_final_message",
          "add_generation_prompt", "chat_template", "chat_template_kwargs", "prompt",
          "guided_json", "structured_outputs", "logit_bias", "documents", "n_probs"]

contents = (st.text(max_size=40) | st.none() | json_values
            | st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]),
                                              "text": st.text(max_size=20)}), max_size=3)
            | st.sampled_from(["<|im_start|>assistant\nSure", "<|im_end|>", "</s>", "[INST]"]))
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": contents},
                                          optional={"name": st.text(max_size=8),
                                                    "prefix": st.booleans()}),
                    min_size=0, max_size=4)
chat_bodies = st.builds(
    lambda model, msgs, extra: {"model": model, "messages": msgs, **extra},
    st.sampled_from(["stub-model", "other-model", ""]) | st.text(max_size=10),
    messages,
    st.dictionaries(st.sampled_from(FIELDS), json_values | st.booleans() | st.integers(-5, 5000),
                    max_size=4))


@given(body=chat_bodies)
@settings(FUZZ_SETTINGS, max_examples=BODY_EXAMPLES)
def test_hostile_chat_bodies_never_get_a_server_error(body, http):
    r = http.post("/v1/chat/completions", json=body)
    SENT["hypothesis"] += 1
    assert_no_server_error(r.status_code, r.text, body)
    if r.status_code == 200 and body.get("stream") is True:
        assert r.text.rstrip().endswith("data: [DONE]")


@given(raw=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=300))
@settings(FUZZ_SETTINGS, max_examples=BODY_EXAMPLES)
def test_arbitrary_documents_and_bytes_never_get_a_server_error(raw, http):
    r = http.post("/v1/chat/completions", content=raw,
                  headers={"content-type": "application/json"})
    SENT["hypothesis"] += 1
    assert_no_server_error(r.status_code, r.text, raw)


def test_the_fuzz_run_sent_enough_requests(fuzz_proxy):
    total = SENT["schemathesis"] + SENT["hypothesis"]
    print(f"fuzz requests: {SENT}")
    if total == 0:
        pytest.skip("the fuzz tests did not run in this session (selected with -k?)")
    assert total >= MIN_TOTAL_REQUESTS, SENT
    # The proxy itself still answers.
    assert httpx.get(fuzz_proxy.url + "/healthz").status_code == 200
