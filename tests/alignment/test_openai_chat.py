"""The alignment module's HTTP calls go through the openai SDK (timeouts, retries): the endpoint
generator (a prefix is continued, vLLM-style), the teacher, and the retry on an error answer.
The endpoint is the scripted vLLM-protocol stub on loopback."""

from __future__ import annotations

import pytest
from tiny import make_tokenizer

from alignment.data.teacher import Teacher
from alignment.evaluate.generate import EndpointGenerator, Sampling
from alignment.openai_chat import MAX_RETRIES, chat_client, chat_text


def test_endpoint_generator_sends_sampling_and_continues_a_prefix(stub_upstream):
    stub_upstream.script("gen", ["Hello", " there"])
    stub_upstream.clear()
    tok = make_tokenizer("chatml")
    generator = EndpointGenerator(stub_upstream.url + "/v1", "m", tok, api_key="k1")
    prefix = generator.prefix_ids("Sure, here", 3)
    sampling = Sampling(temperature=0.9, top_p=0.6, seed=4, max_new_tokens=12)
    done = generator.complete(["say script:gen", "say script:gen"], [[], prefix], sampling)
    # The stub picks a script by the last message: the continued one gets its default answer.
    assert done[0].text == "Hello there" and done[1].text.startswith(" tok")
    assert done[0].prefix == "" and done[1].prefix == tok.decode(prefix, skip_special_tokens=True)
    # The text comes back cut into the target's tokens, so a refusal onset counts in tokens.
    for completion in done:
        assert "".join(completion.token_texts) == completion.answer
        assert len(completion.token_texts) == len(
            tok(completion.answer, add_special_tokens=False)["input_ids"]
        )
    sent = sorted(stub_upstream.requests(), key=len)
    plain, continued = sent
    assert plain["max_tokens"] == 12 and plain["seed"] == 4
    assert plain["temperature"] == 0.9 and plain["top_p"] == 0.6
    assert "continue_final_message" not in plain and len(plain["messages"]) == 1
    assert continued["continue_final_message"] is True
    assert continued["add_generation_prompt"] is False
    assert continued["messages"][-1] == {"role": "assistant", "content": done[1].prefix}
    assert stub_upstream.request_headers()[-1]["authorization"] == "Bearer k1"


def test_teacher_answers_greedily_with_an_optional_system_turn(stub_upstream):
    stub_upstream.script("teach", ["  An answer. "])
    stub_upstream.clear()
    teacher = Teacher(stub_upstream.url + "/v1", "teacher-model")
    assert teacher.answer("q script:teach", max_tokens=20, system="be brief") == "An answer."
    sent = stub_upstream.requests()[0]
    assert sent["temperature"] == 0 and sent["max_tokens"] == 20
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}


def test_an_error_answer_is_retried_then_raised(stub_upstream):
    stub_upstream.script("down", [], fault="status", status=503, body='{"error": "overloaded"}')
    stub_upstream.clear()
    client = chat_client(stub_upstream.url + "/v1", timeout=10.0)
    with pytest.raises(RuntimeError, match="503"):
        chat_text(client, "m", [{"role": "user", "content": "script:down"}], max_tokens=4)
    assert len(stub_upstream.requests()) == 1 + MAX_RETRIES
