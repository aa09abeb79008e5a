from __future__ import annotations

import pytest

from tests.engine.tiny_model import build_model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_model_dir(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    return build_model_dir(tmp_path_factory.mktemp("tiny-qwen2") / "tiny-qwen2", "qwen2")


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from proxy.engine.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_model_dir)
