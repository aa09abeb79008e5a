"""Ordinary traffic passes untouched: history, system prompts, tool calls with auto, JSON mode."""

from __future__ import annotations

import pytest

from proxy.policy import PolicySettings, PolicyViolation, check_chat_request

from .conftest import MODEL, chat

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        },
    ],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_multi_turn_with_history_passes_unchanged(ctx):
    messages = [
        SYSTEM,
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
    ]
    body = chat(
        *messages,
        temperature=0.7,
        top_p=0.9,
        max_tokens=256,
        stream=True,
        stream_options={"include_usage": True},
        seed=3,
        stop=["\n\n"],
        n=2,
    )
    assert check_chat_request(body, ctx) == body


def test_tool_round_trip_with_auto_passes(ctx):
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        CALL,
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
    ]
    body = chat(*messages, tools=TOOLS, tool_choice="auto", parallel_tool_calls=True)
    out = check_chat_request(body, ctx)
    assert out["messages"][1]["tool_calls"] == CALL["tool_calls"]
    assert (
        out["messages"][3] == messages[3] and out["tools"] == TOOLS and out["tool_choice"] == "auto"
    )


def test_sdk_response_message_as_history_is_accepted(ctx):
    # What `messages.append(resp.choices[0].message.model_dump())` sends back.
    echoed = {
        "role": "assistant",
        "content": "Hello!",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
        "reasoning_content": None,
    }
    out = check_chat_request(
        chat({"role": "user", "content": "Hi"}, echoed, {"role": "user", "content": "More"}), ctx
    )
    assert out["messages"][1] == {"role": "assistant", "content": "Hello!"}


def test_json_mode_and_plain_schema_pass(ctx):
    plain = {
        "type": "json_schema",
        "json_schema": {
            "name": "review",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["stars", "text", "tags"],
                "properties": {
                    "stars": {"type": "integer", "enum": [1, 2, 3, 4, 5], "default": 3},
                    "text": {"type": "string", "description": "pattern of use"},
                    "pattern": {"type": "boolean", "const": True},
                    "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
                },
                "$defs": {"tag": {"type": "string", "maxLength": 20}},
            },
        },
    }
    for fmt in ({"type": "json_object"}, {"type": "text"}, plain):
        assert check_chat_request(chat(response_format=fmt), ctx)["response_format"] == fmt


def test_prose_about_templates_passes(ctx):
    for text in (
        "What does im_start mean in ChatML?",
        "Explain the <|im_start|> marker".replace("<|", "< |"),
        "In Llama 2 prompts, what is INST?",
        "Use <b>bold</b> and <s>strike</s> in HTML",
        "array[0] and [link](url) and a <div> tag",
        "the eot_id token of Llama 3",
    ):
        assert (
            check_chat_request(chat({"role": "user", "content": text}), ctx)["messages"][0][
                "content"
            ]
            == text
        )


@pytest.mark.parametrize(
    "token",
    [
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<filename>",
        "<|start_header_id|>",
        "<|eot_id|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "[INST]",
        "[/INST]",
        "<<SYS>>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
        "<｜Assistant｜>",
        "<|start|>",
        "<|channel|>",
        "<|message|>",
        "[TOOL_CALLS]",
    ],
)
def test_literal_control_token_is_rejected_with_token_and_offset(token, ctx):
    with pytest.raises(PolicyViolation) as caught:
        check_chat_request(chat({"role": "user", "content": f"what is {token}?"}), ctx)
    assert caught.value.code == "control_token_in_content"
    assert repr(token) in caught.value.message and "character 8" in caught.value.message


@pytest.mark.parametrize(
    "body,code,param",
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "missing_required_parameter", "model"),
        ({"model": MODEL}, "missing_required_parameter", "messages"),
        ({"model": MODEL, "messages": []}, "invalid_value", "messages"),
        ({"model": MODEL, "messages": "hi"}, "invalid_type", "messages"),
        (
            {"model": MODEL, "messages": [{"content": "x"}]},
            "missing_required_parameter",
            "messages[0].role",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user"}]},
            "missing_required_parameter",
            "messages[0].content",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": 3}]},
            "invalid_type",
            "messages[0].content",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x", "extra": 1}]},
            "unknown_parameter",
            "messages[0].extra",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "x", "cache_control": {}}],
                    }
                ],
            },
            "unknown_parameter",
            "messages[0].content[0].cache_control",
        ),
        (chat(temperature="hot"), "invalid_type", "temperature"),
        (chat(temperature=9), "value_out_of_range", "temperature"),
        (chat(max_tokens=True), "invalid_type", "max_tokens"),
        (chat(stream="yes"), "invalid_type", "stream"),
        (
            chat(stream_options={"include_usage": True, "x": 1}),
            "unknown_parameter",
            "stream_options.x",
        ),
        (chat(tools=[{"type": "function"}]), "missing_required_parameter", "tools[0].function"),
        (chat(tool_choice="sometimes"), "invalid_value", "tool_choice"),
        ([1, 2], "invalid_type", "body"),
    ],
)
def test_malformed_requests_name_the_param(body, code, param, ctx):
    with pytest.raises(PolicyViolation) as caught:
        check_chat_request(body, ctx)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, code, param)


def test_operator_settings_change_the_policy(ctx, smol_matcher):
    import dataclasses

    open_ctx = dataclasses.replace(
        ctx,
        settings=PolicySettings(
            allowed_tool_names=["get_weather"],
            allowed_tool_choices=["none", "auto", "required"],
            allowed_content_part_types=["text", "image_url"],
            allow_documents=True,
            allowed_chat_template_kwargs=["enable_thinking", "reasoning_effort"],
        ),
    )
    image = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
    }
    out = check_chat_request(
        chat(
            image,
            tools=TOOLS,
            tool_choice="required",
            documents=[{"text": "d"}],
            chat_template_kwargs={"enable_thinking": False, "reasoning_effort": "low"},
        ),
        open_ctx,
    )
    assert out["tool_choice"] == "required" and out["messages"] == [image]
    other_tool = [{"type": "function", "function": {"name": "delete_files"}}]
    with pytest.raises(PolicyViolation) as caught:
        check_chat_request(chat(tools=other_tool), open_ctx)
    assert (caught.value.code, caught.value.param) == ("tool_not_allowed", "tools[0].function.name")


def test_settings_reject_bad_configuration():
    with pytest.raises(ValueError):
        PolicySettings(allowed_content_part_types=["image_url"])
    with pytest.raises(ValueError):
        PolicySettings(allowed_tool_choices=["always"])
    with pytest.raises(ValueError):
        PolicySettings(extra_control_tokens=["  "])
