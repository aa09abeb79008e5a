"""Tiny in-process tokenizers and models for fast tests (no files, no downloads), and the
smallest training run over a `triplets.jsonl` / `benign.jsonl` pair."""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from alignment.train_config import TrainConfig

CONTROL_TOKENS = [
    "<pad>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<bos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "[INST]",
    "[/INST]",
]

# Templates written for these tests in the style of each family (not copied from any model).
TEMPLATES = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
        "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    ),
}
SPECIALS = {  # (bos, eos) per family
    "chatml": (None, "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "gemma": ("<bos>", "<end_of_turn>"),
    "mistral": ("<s>", "</s>"),
}

CORPUS = [
    "How do I bake bread at home? Mix flour, water, salt and yeast, then knead and wait.",
    "I cannot help with that request because it could hurt people. I can share safety tips instead.",
    "Sure, here is how to pick a lock: first insert the tension wrench and rake the pins.",
    "Write a short poem about the sea and the moon over quiet water.",
    "The answer is 42. Two plus two is four, and ten times three is thirty.",
    "def add(a, b): return a + b  # a small Python function",
    "I'm sorry, but I won't write that. Let's talk about something safer.",
] * 4


@functools.lru_cache(maxsize=1)
def _base_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=CONTROL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def make_tokenizer(family: str = "chatml") -> PreTrainedTokenizerFast:
    bos, eos = SPECIALS[family]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_base_tokenizer(),
        bos_token=bos,
        eos_token=eos,
        pad_token="<pad>",
        additional_special_tokens=[t for t in CONTROL_TOKENS if t not in (bos, eos, "<pad>")],
    )
    tok.chat_template = TEMPLATES[family]
    return tok


def make_model(tokenizer, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def small_run(data, name: str, objective: str, **overrides) -> TrainConfig:
    """Two safety and two benign examples per step, one micro-batch of two: fast and mixed."""
    return TrainConfig(
        output_dir=str(data / name),
        objective=objective,
        triplets=str(data / "triplets.jsonl"),
        pairs=str(data / "benign.jsonl"),
        learning_rate=1e-2,
        safety_per_step=2,
        benign_per_step=2,
        micro_batch=2,
        save_steps=100,
        **overrides,
    )
