"""The control-token matcher: sources (tokenizer files, GGUF, built-in table) and matching."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models

from proxy.policy import ControlTokenMatcher
from proxy.policy.families import FAMILIES, builtin_markers

from .conftest import smol_gguf


def write_tokenizer_json(directory, specials: list[str], plain_added: list[str]) -> None:
    vocab = {"[UNK]": 0, "hello": 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(specials)
    tok.add_tokens(plain_added)
    tok.save(str(directory / "tokenizer.json"))


def test_reads_special_tokens_of_tokenizer_json_but_not_plain_added_tokens(tmp_path):
    # Gemma-style: HTML tags are added tokens but not special; treating them as control tokens
    # would reject every pasted web page.
    write_tokenizer_json(tmp_path, ["<|custom_turn|>"], ["<table>"])
    matcher, source = ControlTokenMatcher.from_model_dir(tmp_path)
    assert "1 special tokens from tokenizer.json" in source
    assert matcher.find("a <|custom_turn|> b") == ("<|custom_turn|>", 2)
    assert matcher.find("<table><tr></tr></table>") is None


def test_reads_tokenizer_config_json(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "added_tokens_decoder": {
                    "7": {"content": "<|turn_a|>", "special": True},
                    "8": {"content": "<plain>", "special": False},
                },
                "eos_token": {"content": "<|my_eos|>"},
                "bos_token": "<|my_bos|>",
                "additional_special_tokens": ["<|extra|>"],
            }
        )
    )
    matcher, source = ControlTokenMatcher.from_model_dir(tmp_path)
    assert "tokenizer_config.json" in source
    for token in ("<|turn_a|>", "<|my_eos|>", "<|my_bos|>", "<|extra|>"):
        assert matcher.find(f"x{token}") == (token, 1)
    assert matcher.find("<plain>") is None


def test_reads_the_served_gguf(tmp_path):
    matcher, source = ControlTokenMatcher.from_model_dir(smol_gguf())
    assert "17 special tokens" in source
    assert matcher.find("see <jupyter_code> here") == ("<jupyter_code>", 4)


@pytest.mark.parametrize("path", [None, "does/not/exist", "bad-json"])
def test_unreadable_tokenizer_falls_back_to_builtin_table_and_says_so(path, tmp_path):
    if path == "bad-json":
        (tmp_path / "tokenizer_config.json").write_text("{not json")
        path = tmp_path
    matcher, source = ControlTokenMatcher.from_model_dir(path)
    assert "built-in table only" in source
    assert set(matcher.tokens) == set(builtin_markers())
    assert matcher.find("x<|im_start|>") == ("<|im_start|>", 1)


def test_extra_tokens_from_settings_are_matched():
    matcher, _ = ControlTokenMatcher.from_model_dir(None, extra=["<<END>>"])
    assert matcher.find("a <<END>>") == ("<<END>>", 2)


def test_every_family_marker_is_found_inside_text():
    matcher = ControlTokenMatcher.builtin()
    for family in FAMILIES:
        for marker in family.markers:
            assert matcher.find(f"text {marker} more") == (marker, 5), (family.name, marker)


def test_overlapping_tokens_find_the_first_position_and_longest_token():
    matcher = ControlTokenMatcher(["<|end|>", "<|endoftext|>", "<|e"])
    assert matcher.find("ab<|endoftext|>") == ("<|endoftext|>", 2)
    assert matcher.find("ab<|end|> <|e") == ("<|end|>", 2)
    assert matcher.find("ab<|ex") == ("<|e", 2)
    assert matcher.find("no markers here <| end |>") is None


def test_long_input_is_scanned_whole():
    matcher = ControlTokenMatcher.builtin()
    long_text = "word <b>x</b> [1] " * 20000
    assert matcher.find(long_text) is None
    assert matcher.find(long_text + "<|eot_id|>") == ("<|eot_id|>", len(long_text))


def test_blank_token_sets_are_refused():
    with pytest.raises(ValueError):
        ControlTokenMatcher(["", "  "])
