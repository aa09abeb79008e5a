import pytest
from tiny import TEMPLATES, make_tokenizer

from alignment.chat import ChatTemplateError, encode_turn, end_of_turn_ids

END_TOKEN = {
    "chatml": "<|im_end|>",
    "llama3": "<|eot_id|>",
    "gemma": "<end_of_turn>",
    "mistral": "</s>",
}


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_answer_mask_covers_answer_and_end_of_turn_only(family):
    tok = make_tokenizer(family)
    turn = encode_turn(tok, "How do I bake bread?", "Mix flour and water.")
    assert tok.decode(turn.answer_ids).strip() == "Mix flour and water."
    assert tok.convert_ids_to_tokens(turn.end_ids) == [END_TOKEN[family]]
    prompt_text = tok.decode(turn.prompt_ids)
    assert "How do I bake bread?" in prompt_text and "Mix flour" not in prompt_text
    # prompt + answer + end is exactly the rendered conversation up to the end-of-turn token
    full = tok.apply_chat_template(
        [
            {"role": "user", "content": "How do I bake bread?"},
            {"role": "assistant", "content": "Mix flour and water."},
        ],
        tokenize=False,
    )
    assert full.startswith(tok.decode(turn.prompt_ids + turn.answer_ids + turn.end_ids))


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_end_of_turn_ids_name_the_family_token(family):
    tok = make_tokenizer(family)
    assert tok.convert_tokens_to_ids(END_TOKEN[family]) in end_of_turn_ids(tok)


def test_system_prompt_stays_in_prompt():
    tok = make_tokenizer("chatml")
    turn = encode_turn(tok, "hi", "hello", system="Be brief.")
    assert "Be brief." in tok.decode(turn.prompt_ids)


def test_template_that_hides_answer_is_rejected():
    tok = make_tokenizer("chatml")
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}{% endfor %}"
    with pytest.raises(ChatTemplateError):
        encode_turn(tok, "hi", "hello")


def test_missing_template_is_a_clear_error():
    tok = make_tokenizer("chatml")
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="chat_template"):
        encode_turn(tok, "hi", "hello")
