"""Tokens/s of the engine's generator against a plain `model.generate` on the same model.

Loads the model once (default: the packaged SmolLM2 GGUF), then for the same chat prompt and the
same number of new tokens (greedy) runs:
  - `model.generate(**inputs, max_new_tokens=N)` with default settings, on the model as loaded
    (float32, as `load_model_and_tokenizer` returns it), and again on a bfloat16 copy;
  - the engine's `generate_tokens` with each decoder weight mode (float32, bfloat16, int8).
Prints the median tokens/s of a few repetitions side by side and the ratio to the float32
baseline, all measured in the same run.

    nice .venv/bin/python bench/engine_bench.py [--model PATH] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.engine.decoders import make_decoder  # noqa: E402
from proxy.engine.generation import GenerationRequest, generate_tokens  # noqa: E402
from proxy.engine.loading import default_model_path, load_model_and_tokenizer  # noqa: E402
from proxy.engine.sampling import SamplingParams, make_generator  # noqa: E402

PROMPT = "Count from 1 to 1000, one number per line."


def time_generate(model, inputs, tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=tokens)
    elapsed = time.perf_counter() - start
    return elapsed, out.shape[1] - inputs["input_ids"].shape[1]


def time_engine(decoder, tokenizer, prompt_ids, tokens: int) -> tuple[float, int]:
    request = GenerationRequest(prompt_ids, tokens, SamplingParams(temperature=0.0))
    start = time.perf_counter()
    # No end-of-turn ids: always produce exactly `tokens` tokens, like the baseline below.
    count = sum(1 for _ in generate_tokens(decoder, tokenizer, request, frozenset(),
                                           make_generator(0)))
    return time.perf_counter() - start, count


def median_rate(run, repeats: int, label: str) -> float:
    run()  # warm-up: first-call allocations and kernel selection
    rates = []
    for _ in tqdm(range(repeats), desc=label, leave=False):
        elapsed, count = run()
        rates.append(count / elapsed)
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF directory or .gguf (default: packaged)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    path = args.model or default_model_path()
    model, tokenizer = load_model_and_tokenizer(path, torch.float32)
    messages = [{"role": "user", "content": PROMPT}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    prompt_ids = inputs["input_ids"][0].tolist()
    # The baseline must produce the same number of tokens: ignore end of turn, as the engine does.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id or 0

    rows = [("model.generate float32 (baseline)",
             median_rate(lambda: time_generate(model, inputs, args.tokens), args.repeats,
                         "generate fp32"))]
    for mode in ("float32", "bfloat16", "int8"):
        decoder = make_decoder(model, mode)
        rows.append((f"engine {mode}",
                     median_rate(lambda: time_engine(decoder, tokenizer, prompt_ids, args.tokens),
                                 args.repeats, f"engine {mode}")))
    bf16_model = model.to(torch.bfloat16)
    rows.append(("model.generate bfloat16",
                 median_rate(lambda: time_generate(bf16_model, inputs, args.tokens),
                             args.repeats, "generate bf16")))

    baseline = rows[0][1]
    print(f"model: {path}  new tokens: {args.tokens}  repeats: {args.repeats} (median)  "
          f"torch threads: {torch.get_num_threads()}")
    print(f"{'':36s} {'tokens/s':>9s} {'vs baseline':>12s}")
    for label, rate in rows:
        print(f"{label:36s} {rate:9.1f} {rate / baseline:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
