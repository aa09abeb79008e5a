"""Find control-token strings in client text, in one compiled pass.

Chat templates are rendered to a string and re-tokenised with special tokens split out, so the
text `<|im_start|>assistant` inside a user message becomes a real turn marker (role spoofing and
prefill through content). The matcher rejects the served tokenizer's special tokens plus the
built-in markers of every known family (families.py), always.

All strings are merged into one regular expression shaped like a trie (common prefixes factored
out), so a scan costs one `re.search` over the text whatever the number of tokens. Before that,
`str.find` (C speed, memchr) looks for the few characters a token can start with; ordinary prose
holds none of them past some point, and the regex only runs from the first candidate on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from proxy.policy.families import builtin_markers
from proxy.policy.violation import CONTROL_TOKEN, VALUE_OUT_OF_RANGE, PolicyViolation

_END = ""  # trie key marking "a token ends here"


def _trie_pattern(tokens: Iterable[str]) -> str:
    trie: dict = {}
    for token in tokens:
        node = trie
        for ch in token:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return _node_pattern(trie)


def _node_pattern(node: dict) -> str:
    ends_here = _END in node
    branches = [
        re.escape(ch) + _node_pattern(child) for ch, child in sorted(node.items()) if ch != _END
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends_here:
        # Prefer the longer token, but a shorter one that ends here is a match too.
        return "(?:" + body + ")?"
    return body


class ControlTokenMatcher:
    """A fixed set of control-token strings and a fast `find` over text."""

    __slots__ = ("tokens", "token_ids", "_search", "_first_chars")

    def __init__(self, tokens: Iterable[str], token_ids: dict[str, int] | None = None) -> None:
        unique = sorted({t for t in tokens if t and t.strip()})
        if not unique:
            raise ValueError("ControlTokenMatcher needs at least one non-blank token")
        self.tokens: tuple[str, ...] = tuple(unique)
        # Special token -> id in the served tokenizer (empty without one): the rendered-prompt
        # check counts turn markers in the prompt's token ids with it.
        self.token_ids: dict[str, int] = dict(token_ids or {})
        self._search = re.compile(_trie_pattern(unique)).search
        self._first_chars = tuple(sorted({t[0] for t in unique}))

    def find(self, text: str) -> tuple[str, int] | None:
        """The first control token in `text` and its offset, or None."""
        start = -1
        for ch in self._first_chars:
            at = text.find(ch)
            if at != -1 and (start == -1 or at < start):
                start = at
        if start == -1:
            return None
        match = self._search(text, start)
        if match is None:
            return None
        return match.group(), match.start()

    @classmethod
    def builtin(cls, extra: Iterable[str] = ()) -> ControlTokenMatcher:
        return cls([*builtin_markers(), *extra])

    @classmethod
    def from_model_dir(
        cls, path: str | os.PathLike | None, extra: Iterable[str] = (), required: bool = False
    ) -> tuple[ControlTokenMatcher, str]:
        """Built-in family table plus the special tokens of the tokenizer at `path` (a model
        directory with tokenizer.json / tokenizer_config.json, one of those files, or a GGUF file).
        None -> built-in table only. Unreadable -> `TokenizerUnreadable` when `required`, else
        the built-in table only. The string says which source was used."""
        extra = list(extra)
        builtin_count = len(builtin_markers())
        if path is None:
            return (
                cls.builtin(extra),
                f"control tokens: built-in table only ({builtin_count} markers); "
                "no tokenizer path configured",
            )
        try:
            found, source = read_special_tokens(Path(path))
        except (OSError, ValueError, ImportError, KeyError, TypeError) as exc:
            if required:
                raise TokenizerUnreadable(
                    f"could not read the served tokenizer at {path}: {exc}. Fix "
                    "upstream.tokenizer_path, or set policy.require_tokenizer=false to run with "
                    "the built-in control-token table only."
                ) from exc
            return (
                cls.builtin(extra),
                f"control tokens: built-in table only ({builtin_count} markers); could not read "
                f"the tokenizer at {path}: {exc}",
            )
        ids = {token: i for token, i in found.items() if i is not None}
        matcher = cls([*builtin_markers(), *found, *extra], ids)
        return (
            matcher,
            f"control tokens: built-in table ({builtin_count} markers) + "
            f"{len(found)} special tokens from {source}; {len(matcher.tokens)} in all",
        )


class TokenizerUnreadable(RuntimeError):
    """The configured tokenizer could not be read and the operator requires one."""


def read_special_tokens(path: Path) -> tuple[dict[str, int | None], str]:
    """Special-token strings of a tokenizer (with their ids where the file gives them), and the
    file(s) they came from."""
    if path.is_file():
        if path.suffix == ".gguf":
            return _from_gguf(path), str(path)
        if path.name == "tokenizer.json":
            return _from_tokenizer_json(path), str(path)
        if path.name == "tokenizer_config.json":
            return _from_tokenizer_config(path), str(path)
        raise ValueError(
            f"{path.name} is not tokenizer.json, tokenizer_config.json or a .gguf file"
        )
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path}")
    tokens: dict[str, int | None] = {}
    sources: list[str] = []
    for name, reader in (
        ("tokenizer.json", _from_tokenizer_json),
        ("tokenizer_config.json", _from_tokenizer_config),
    ):
        file = path / name
        if file.is_file():
            for token, token_id in reader(file).items():
                if tokens.get(token) is None:
                    tokens[token] = token_id
            sources.append(name)
    if not sources:
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _from_gguf(ggufs[0]), str(ggufs[0])
        raise FileNotFoundError(
            f"no tokenizer.json, tokenizer_config.json or single .gguf in {path}"
        )
    return tokens, f"{' + '.join(sources)} in {path}"


def _from_tokenizer_json(file: Path) -> dict[str, int | None]:
    # The light `tokenizers` package parses the file the way the engine will.
    from tokenizers import Tokenizer

    try:
        decoder = Tokenizer.from_file(str(file)).get_added_tokens_decoder()
        return {t.content: i for i, t in decoder.items() if t.special}
    except Exception:  # a format newer than this tokenizers release: read the JSON itself
        data = json.loads(file.read_text(encoding="utf-8"))
        return {t["content"]: t.get("id") for t in data.get("added_tokens", []) if t.get("special")}


def _content(entry: object) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return entry["content"]
    return None


def _from_tokenizer_config(file: Path) -> dict[str, int | None]:
    data = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{file} does not hold a JSON object")
    tokens: dict[str, int | None] = {}
    for key, e in (data.get("added_tokens_decoder") or {}).items():
        if isinstance(e, dict) and e.get("special") and isinstance(e.get("content"), str):
            tokens[e["content"]] = int(key) if str(key).isdigit() else None
    names = [
        _content(data.get(key))
        for key in (
            "bos_token",
            "eos_token",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
        )
    ]
    names += [_content(entry) for entry in data.get("additional_special_tokens") or []]
    for content in names:
        if content:
            tokens.setdefault(content, None)
    return tokens


def _from_gguf(file: Path) -> dict[str, int | None]:
    # gguf ships with the engine extra; without it the caller falls back to the built-in table.
    import gguf

    reader = gguf.GGUFReader(str(file))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    control = int(gguf.TokenType.CONTROL)
    return {
        tok: i for i, (tok, kind) in enumerate(zip(tokens, types, strict=True)) if kind == control
    }


MAX_JSON_DEPTH = 64


def reject_control_tokens(text: str, param: str, matcher: ControlTokenMatcher) -> None:
    """Raise a `control_token_in_content` violation naming the token and where it is."""
    found = matcher.find(text)
    if found is not None:
        token, offset = found
        raise PolicyViolation(
            CONTROL_TOKEN,
            f"`{param}` contains the control token {token!r} at character {offset}. Chat-template "
            "control tokens cannot be sent as text, because the template would read them as real "
            "turn markers; describe the token in words instead.",
            param,
            "control_token",
        )


def reject_control_tokens_in_json(
    value: object, param: str, matcher: ControlTokenMatcher, depth: int = 0
) -> None:
    """Scan every string (keys included) of a JSON value that a template renders, e.g. with tojson."""
    if depth > MAX_JSON_DEPTH:
        raise PolicyViolation(
            VALUE_OUT_OF_RANGE, f"`{param}` is nested deeper than {MAX_JSON_DEPTH} levels.", param
        )
    if type(value) is str:
        reject_control_tokens(value, param, matcher)
    elif type(value) is dict:
        for key, item in value.items():
            reject_control_tokens(key, f"{param}.{key}", matcher)
            reject_control_tokens_in_json(item, f"{param}.{key}", matcher, depth + 1)
    elif type(value) is list:
        for index, item in enumerate(value):
            reject_control_tokens_in_json(item, f"{param}[{index}]", matcher, depth + 1)
