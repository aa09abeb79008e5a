"""Turn (prompt, answer) pairs into token ids using the model's own chat template.

Which tokens belong to the answer is decided by rendering the conversation with and without the
answer, never by hard-coded token ids, so the same code serves ChatML, Llama-3, Gemma, Mistral and
any other template. The prompt and the answer are tokenised separately because that is what
happens at inference: the model reads the rendered prompt, then produces the answer token by token.
"""

from __future__ import annotations

from dataclasses import dataclass


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used to separate prompt and answer."""


@dataclass(frozen=True)
class EncodedTurn:
    prompt_ids: list[
        int
    ]  # everything the model reads before answering (generation prompt included)
    answer_ids: list[int]  # the answer text
    end_ids: list[int]  # the end-of-turn token(s) that close the answer; trained so the model stops


def _messages(prompt: str, system: str | None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}]


def render_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The text the model sees before its answer, generation prompt included."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            "the tokenizer has no chat_template; set one before training or generating"
        )
    return tokenizer.apply_chat_template(
        _messages(prompt, system), tokenize=False, add_generation_prompt=True
    )


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of a text fragment, without BOS/EOS (templates write their own special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    # Templates often close a turn with an added token that is not registered as "special"
    # (e.g. <|eot_id|>, <end_of_turn>); every added token counts as a control token here.
    ids.update(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    return ids


def encode_turn(tokenizer, prompt: str, answer: str, system: str | None = None) -> EncodedTurn:
    """Split one rendered exchange into prompt, answer and end-of-turn ids.

    Anything the template writes after the end-of-turn token (a newline, the next turn's header)
    is dropped: the loss covers the answer and the token that ends it, nothing more.
    """
    if not answer.strip():
        raise ValueError("answer is empty")
    prompt_text = render_prompt(tokenizer, prompt, system)
    full_text = tokenizer.apply_chat_template(
        _messages(prompt, system) + [{"role": "assistant", "content": answer}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ChatTemplateError(
            "the chat template renders the prompt differently when an answer follows; "
            "cannot tell prompt tokens from answer tokens"
        )
    tail = full_text[len(prompt_text) :]
    # Templates may trim the answer; locate what they actually wrote.
    core = answer.strip()
    start = tail.find(core)
    if start < 0:
        raise ChatTemplateError("the chat template does not write the assistant answer verbatim")
    content_end = start + len(core)
    answer_ids = encode_text(tokenizer, tail[:content_end])
    closing_ids = encode_text(tokenizer, tail[content_end:])
    specials = _special_ids(tokenizer)
    end_ids = closing_ids
    for i, tok in enumerate(closing_ids):
        if tok in specials:
            end_ids = closing_ids[: i + 1]
            break
    else:
        if tokenizer.eos_token_id is None:
            raise ChatTemplateError(
                "no end-of-turn token found after the answer and the tokenizer has no eos"
            )
        end_ids = [tokenizer.eos_token_id]
    return EncodedTurn(encode_text(tokenizer, prompt_text), answer_ids, end_ids)


def end_of_turn_ids(tokenizer) -> list[int]:
    """The id(s) that end an assistant turn, for stopping generation."""
    turn = encode_turn(tokenizer, "hi", "ok")
    ids = set(turn.end_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
