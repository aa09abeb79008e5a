"""Models for alignment: load (HF directory, .gguf file or the packaged default) and export.

Loading is the engine's (`proxy.engine.loading`), so training and serving read a model the same
way. Export writes a directory that transformers, `deepguard engine` and `vllm serve` all load:
safetensors, tokenizer with the chat template inside `tokenizer_config.json`, a generation config
that stops at the end-of-turn token, `architectures` in config.json, and a model card.
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_MODEL = "default"


def resolve_model_path(spec: str | Path | None) -> Path:
    """`None` or "default" means the packaged SmolLM2-135M-Instruct; anything else is a path."""
    from proxy.engine.loading import default_model_path

    if spec is None or str(spec) == DEFAULT_MODEL:
        return default_model_path()
    return Path(spec)


def load_model(spec: str | Path | None, dtype=None):
    """(model, tokenizer) on CPU in float32 unless `dtype` is given; the tokenizer can pad."""
    import torch

    from proxy.engine.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(resolve_model_path(spec), dtype=dtype or torch.float32)
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
        raise ValueError("the model's tokenizer has no chat template; alignment needs one to find answer tokens")


def _merge_adapters(model):
    """A LoRA model is exported with its adapters merged, so servers need no peft."""
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        return model.merge_and_unload()
    return model


def export_model(model, tokenizer, out_dir: str | Path, card_text: str, summary: dict | None = None) -> Path:
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
