"""The allowlist: every top-level request field the proxy knows, its action, and why.

The upstream body is rebuilt from this table only. vLLM accepts and ignores unknown fields and
adds new ones every release, so a field that is not listed here is rejected (`unknown_parameter`)
rather than passed on: a new vLLM release cannot open a hole.

Actions
  PASS     checked (type, range, content) and sent upstream
  DROP     harmless extra or a default the proxy forces: removed silently
  REJECT   400 `forbidden_parameter` unless the value equals the harmless default (then dropped)
  PREFILL  like REJECT, but passed through for API keys allowed to prefill (red team)
`null` always counts as "not sent".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.policy.context import PolicyContext
from proxy.policy.control_tokens import reject_control_tokens
from proxy.policy.schema import check_response_format
from proxy.policy.tools import check_tool_choice, check_tools
from proxy.policy.validate import (
    expect_bool,
    expect_dict,
    expect_int,
    expect_list,
    expect_number,
    expect_str,
    invalid,
    short_repr,
    wrong_type,
)
from proxy.policy.violation import (
    FORBIDDEN_PARAMETER,
    UNKNOWN_PARAMETER,
    VALUE_OUT_OF_RANGE,
    PolicyViolation,
)
from proxy.watch.phrases import overlaps_refusal

PASS, DROP, REJECT, PREFILL = "pass", "drop", "reject", "prefill"

Check = Callable[[object, str, PolicyContext], object]


@dataclass(frozen=True)
class Rule:
    action: str
    vector: str
    why: str
    check: Check | None = None
    harmless: tuple = ()  # REJECT/PREFILL values equal to vLLM's default: treated as absent


def _is_harmless(value: object, harmless: tuple) -> bool:
    return any(type(value) is type(h) and value == h for h in harmless)


# --- checks for PASS fields ------------------------------------------------------------------


def _bool(value, param, ctx):
    return expect_bool(value, param)


def _number(low: float, high: float, low_open: bool = False) -> Check:
    return lambda value, param, ctx: expect_number(value, param, low, high, low_open)


def _max_tokens(value, param, ctx):
    return expect_int(value, param, 1, ctx.settings.max_tokens_cap, "sampling_cap")


def _n(value, param, ctx):
    return expect_int(value, param, 1, ctx.settings.max_n, "sampling_cap")


def _top_logprobs(value, param, ctx):
    return expect_int(value, param, 0, ctx.settings.max_top_logprobs, "top_logprobs")


def _seed(value, param, ctx):
    return expect_int(value, param, -(2**63), 2**64 - 1)


def _top_k(value, param, ctx):
    return expect_int(value, param, -1, None)


def _stop(value, param, ctx):
    if type(value) is str:
        return _check_stop(value, param)
    stops = expect_list(value, param)
    if len(stops) > ctx.settings.max_stop_sequences:
        raise invalid(
            param,
            f"`{param}` holds {len(stops)} sequences; at most "
            f"{ctx.settings.max_stop_sequences} are allowed.",
        )
    for index, stop in enumerate(stops):
        _check_stop(expect_str(stop, f"{param}[{index}]"), f"{param}[{index}]")
    return stops


MAX_STOP_CHARS = 256


def _check_stop(stop: str, param: str) -> str:
    # A stop sequence inside a refusal's opening ends the answer before the watch can see the
    # refusal, and the hold-back window then releases the harmful start it held.
    if len(stop) > MAX_STOP_CHARS:
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE,
            f"`{param}` is longer than {MAX_STOP_CHARS} characters.",
            param,
            "stop",
        )
    if overlaps_refusal(stop):
        raise PolicyViolation(
            FORBIDDEN_PARAMETER,
            f"`{param}` {short_repr(stop)} overlaps the "
            "words a refusal starts with; stopping there would hide a refusal "
            "from the answer watch.",
            param,
            "stop",
        )
    return stop


def _repetition_penalty(value, param, ctx):
    return expect_number(value, param, 1.0, ctx.settings.max_repetition_penalty)


def _stream_options(value, param, ctx):
    options = expect_dict(value, param)
    for key, item in options.items():
        if key not in ("include_usage", "continuous_usage_stats"):
            raise PolicyViolation(
                UNKNOWN_PARAMETER,
                f"`{param}.{key}` is not accepted (accepted: "
                "include_usage, continuous_usage_stats).",
                f"{param}.{key}",
                "unknown_parameter",
            )
        if item is not None:
            expect_bool(item, f"{param}.{key}")
    return {k: v for k, v in options.items() if v is not None}


def _reasoning_effort(value, param, ctx):
    if value not in ("none", "minimal", "low", "medium", "high") or type(value) is not str:
        raise invalid(
            param,
            f"`{param}` must be one of none, minimal, low, medium, high; got {short_repr(value)}.",
        )
    return value


def _chat_template_kwargs(value, param, ctx):
    # Template variables can override anything the template reads, even bos_token/eos_token or
    # add_generation_prompt: only operator-approved keys, only plain scalar values.
    kwargs = expect_dict(value, param)
    allowed = ctx.settings.allowed_chat_template_kwargs
    for key, item in kwargs.items():
        at = f"{param}.{key}"
        if key not in allowed:
            raise PolicyViolation(
                FORBIDDEN_PARAMETER,
                f"`{at}` is not accepted: template variables "
                "can rewrite the prompt; accepted keys: "
                f"{', '.join(allowed) or 'none'}.",
                at,
                "chat_template_kwargs",
            )
        if type(item) is str:
            reject_control_tokens(item, at, ctx.control_tokens)
        elif type(item) not in (bool, int, float):
            raise wrong_type(at, "a boolean, number or string", item)
    return dict(kwargs)


def _response_format(value, param, ctx):
    return check_response_format(value, ctx)


def _tools(value, param, ctx):
    return check_tools(value, ctx)


def _tool_choice(value, param, ctx):
    return check_tool_choice(value, ctx)


def _documents(value, param, ctx):
    if not ctx.settings.allow_documents:
        raise PolicyViolation(
            FORBIDDEN_PARAMETER,
            "`documents` is turned off on this server: documents are rendered into the prompt.",
            param,
            "documents",
        )
    for index, doc in enumerate(expect_list(value, param)):
        for key, text in expect_dict(doc, f"{param}[{index}]").items():
            reject_control_tokens(
                expect_str(text, f"{param}[{index}].{key}"),
                f"{param}[{index}].{key}",
                ctx.control_tokens,
            )
    return value


# --- the tables ------------------------------------------------------------------------------

_DROP_WHY = "ignored by vLLM or forced to its default by the proxy"

# Sampling fields shared by /v1/chat/completions and /v1/completions.
SAMPLING_FIELDS: dict[str, Rule] = {
    "stream": Rule(PASS, "", "", _bool),
    "stream_options": Rule(PASS, "", "", _stream_options),
    "max_tokens": Rule(PASS, "sampling_cap", "", _max_tokens),
    "n": Rule(PASS, "sampling_cap", "", _n),
    "best_of": Rule(PASS, "sampling_cap", "", _n),
    "temperature": Rule(PASS, "", "", _number(0.0, 2.0)),
    "top_p": Rule(PASS, "", "", _number(0.0, 1.0, low_open=True)),
    "top_k": Rule(PASS, "", "", _top_k),
    "min_p": Rule(PASS, "", "", _number(0.0, 1.0)),
    "presence_penalty": Rule(PASS, "", "", _number(-2.0, 2.0)),
    "frequency_penalty": Rule(PASS, "", "", _number(-2.0, 2.0)),
    "repetition_penalty": Rule(PASS, "sampling_cap", "", _repetition_penalty),
    "seed": Rule(PASS, "", "", _seed),
    "stop": Rule(PASS, "", "", _stop),
    "include_stop_str_in_output": Rule(PASS, "", "", _bool),
    "response_format": Rule(PASS, "response_format_schema", "", _response_format),
    # Steering the decoder token by token.
    "logit_bias": Rule(
        REJECT,
        "logit_bias",
        "it can suppress refusal tokens or force compliance tokens",
        harmless=({},),
    ),
    "bad_words": Rule(REJECT, "bad_words", "it can ban the words of a refusal", harmless=([],)),
    "allowed_token_ids": Rule(
        REJECT,
        "allowed_token_ids",
        "it can restrict the answer to compliance tokens",
        harmless=([],),
    ),
    "stop_token_ids": Rule(
        REJECT, "stop_token_ids", "token-level stops can cut a refusal short unseen", harmless=([],)
    ),
    "min_tokens": Rule(
        REJECT, "min_tokens", "it pushes the model past a short refusal", harmless=(0,)
    ),
    "ignore_eos": Rule(
        REJECT, "ignore_eos", "it pushes the model past a short refusal", harmless=(False,)
    ),
    "use_beam_search": Rule(
        REJECT, "sampling_cap", "beam search is a best-of-N attack multiplier", harmless=(False,)
    ),
    "length_penalty": Rule(DROP, "", "only used by beam search, which is rejected"),
    "truncate_prompt_tokens": Rule(
        REJECT, "truncation", "it can cut the system prompt or the generation header off the prompt"
    ),
    "truncation_side": Rule(
        REJECT, "truncation", "it can cut the system prompt or the generation header off the prompt"
    ),
    "prompt_logprobs": Rule(
        REJECT,
        "prompt_logprobs",
        "ranked prompt tokens are reconnaissance for rank-assisted attacks",
    ),
    "logprob_token_ids": Rule(
        REJECT,
        "prompt_logprobs",
        "chosen-token log-probabilities are reconnaissance for rank-assisted attacks",
    ),
    # Guided decoding: `regex: "Sure, here is[\s\S]*"` is a prefill. Legacy guided_* are caught by
    # prefix in `rule_for`.
    "structured_outputs": Rule(
        REJECT, "structured_output", "constrained decoding can force the exact start of the answer"
    ),
    "structural_tag": Rule(
        REJECT, "structured_output", "constrained decoding can force the exact start of the answer"
    ),
    # Prompt bypass and engine internals.
    "kv_transfer_params": Rule(
        REJECT, "kv_transfer", "it can hand token ids to the engine past the chat template"
    ),
    "ec_transfer_params": Rule(
        REJECT, "kv_transfer", "it can hand token ids to the engine past the chat template"
    ),
    "vllm_xargs": Rule(REJECT, "plugin_args", "plugin arguments are not exposed to clients"),
    "logits_processors": Rule(REJECT, "plugin_args", "custom logits processors steer decoding"),
    "mm_processor_kwargs": Rule(
        REJECT, "plugin_args", "processor arguments are not exposed to clients"
    ),
    "media_io_kwargs": Rule(
        REJECT, "plugin_args", "media loader arguments are not exposed to clients"
    ),
    "watermarking": Rule(REJECT, "plugin_args", "watermark settings are the operator's"),
    # Shown control tokens and the rendered prompt leak the template and the system prompt.
    "skip_special_tokens": Rule(
        DROP, "", "forced to vLLM's default (true): control tokens stay hidden"
    ),
    "spaces_between_special_tokens": Rule(DROP, "", "forced to vLLM's default"),
    "add_special_tokens": Rule(DROP, "", "forced to vLLM's default"),
    "return_prompt_text": Rule(DROP, "", "the proxy sets it itself and strips it from answers"),
    "return_token_ids": Rule(DROP, "", "the proxy sets it itself and strips it from answers"),
    "return_tokens_as_token_ids": Rule(DROP, "", "leaks token ids; not exposed to clients"),
    "priority": Rule(DROP, "", "scheduling priority is the operator's"),
    "request_id": Rule(DROP, "", "the proxy owns request ids"),
    "cache_salt": Rule(DROP, "", "prefix-cache isolation is the operator's"),
    # OpenAI fields vLLM ignores.
    "user": Rule(DROP, "", _DROP_WHY),
    "store": Rule(DROP, "", _DROP_WHY),
    "metadata": Rule(DROP, "", _DROP_WHY),
    "service_tier": Rule(DROP, "", _DROP_WHY),
    "safety_identifier": Rule(DROP, "", _DROP_WHY),
    "prompt_cache_key": Rule(DROP, "", _DROP_WHY),
}

CHAT_FIELDS: dict[str, Rule] = {
    **SAMPLING_FIELDS,
    "max_completion_tokens": Rule(PASS, "sampling_cap", "", _max_tokens),
    "logprobs": Rule(PASS, "", "", _bool),
    "top_logprobs": Rule(PASS, "top_logprobs", "", _top_logprobs),
    "tools": Rule(PASS, "tools", "", _tools),
    "tool_choice": Rule(PASS, "forced_tool_choice", "", _tool_choice),
    "parallel_tool_calls": Rule(PASS, "", "", _bool),
    "reasoning_effort": Rule(PASS, "", "", _reasoning_effort),
    "include_reasoning": Rule(PASS, "", "", _bool),
    "chat_template_kwargs": Rule(PASS, "chat_template_kwargs", "", _chat_template_kwargs),
    "documents": Rule(PASS, "documents", "", _documents),
    # The prefill switches (attack-surface.md, first rows).
    "continue_final_message": Rule(
        PREFILL,
        "continue_final_message",
        "it makes the model continue the last message, a prefill",
        harmless=(False,),
    ),
    "add_generation_prompt": Rule(
        PREFILL,
        "add_generation_prompt",
        "without the generation header the prompt ends inside a turn the client wrote",
        harmless=(True,),
    ),
    "echo": Rule(
        REJECT,
        "echo",
        "it returns the client's last message as if the model had said it",
        harmless=(False,),
    ),
    "chat_template": Rule(REJECT, "chat_template", "a per-request template can render any prompt"),
    "functions": Rule(
        REJECT,
        "deprecated_functions",
        "the deprecated function-calling format is not supported; use `tools`",
    ),
    "function_call": Rule(
        REJECT,
        "deprecated_functions",
        "the deprecated function-calling format is not supported; use `tool_choice`",
    ),
    "prediction": Rule(REJECT, "prediction", "predicted outputs carry client-written answer text"),
    "modalities": Rule(DROP, "", "text is the only output modality"),
    "audio": Rule(REJECT, "unsupported", "audio output is not supported"),
    "web_search_options": Rule(REJECT, "unsupported", "web search is not supported"),
    "verbosity": Rule(DROP, "", _DROP_WHY),
}

COMPLETION_FIELDS: dict[str, Rule] = {
    **SAMPLING_FIELDS,
    "logprobs": Rule(PASS, "top_logprobs", "", _top_logprobs),
    "echo": Rule(
        REJECT, "echo", "it returns the prompt as if the model had written it", harmless=(False,)
    ),
    "suffix": Rule(REJECT, "suffix", "insertion around client text is not supported"),
    "prompt_embeds": Rule(REJECT, "token_ids_prompt", "embeddings go to the engine unchecked"),
}

_GUIDED = Rule(
    REJECT, "structured_output", "legacy guided decoding can force the exact start of the answer"
)


def rule_for(name: str, table: dict[str, Rule]) -> Rule:
    rule = table.get(name)
    if rule is not None:
        return rule
    if name.startswith("guided_"):
        return _GUIDED
    raise PolicyViolation(
        UNKNOWN_PARAMETER,
        f"`{name}` is not a parameter this server accepts. "
        "Unknown parameters are rejected rather than passed on, so that new "
        "engine options cannot bypass the policy.",
        name,
        "unknown_parameter",
    )


def apply_rule(name: str, rule: Rule, value: object, ctx: PolicyContext, out: dict) -> None:
    """Add the checked value of one field to `out`, drop it, or raise."""
    if value is None or rule.action == DROP:
        return
    if rule.action == PASS:
        out[name] = rule.check(value, name, ctx)
        return
    if _is_harmless(value, rule.harmless):
        return
    if rule.action == PREFILL and ctx.allow_prefill:
        out[name] = expect_bool(value, name)
        return
    grant = (
        " It is only accepted for API keys allowed to prefill." if rule.action == PREFILL else ""
    )
    raise PolicyViolation(
        FORBIDDEN_PARAMETER,
        f"`{name}` is not accepted by this server: {rule.why}.{grant}",
        name,
        rule.vector,
    )
