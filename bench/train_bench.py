"""Benchmark: one training step of `constrained` against one of `sft` on the same batch.

The constrained loss reads cached reference log-probs, so its step should cost what an SFT step
costs (target <= 1.1x). Also prints training throughput in tokens/s. Run:

    nice .venv/bin/python bench/train_bench.py            # the default model (SmolLM2-135M)
    nice .venv/bin/python bench/train_bench.py --batch 8 --length 256 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from alignment.models import load_model  # noqa: E402
from alignment.objectives import (
    IGNORE_INDEX,
    answer_mask,
    constrained_loss,
    sft_loss,
    token_logprobs,
)  # noqa: E402
from alignment.reference import autocast_context  # noqa: E402


def make_batch(vocab: int, batch: int, length: int, prompt: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    labels = ids.clone()
    labels[:, :prompt] = IGNORE_INDEX  # loss on the answer part only, as in training
    return ids, labels, torch.ones_like(ids)


def step(model, optimizer, ids, mask, labels, bf16, ref=None):
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(bf16):
        logits = model(input_ids=ids, attention_mask=mask).logits
    loss = sft_loss(logits, labels) if ref is None else constrained_loss(logits, labels, ref)
    loss.backward()
    optimizer.step()


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=192)
    parser.add_argument(
        "--prompt", type=int, default=64, help="tokens without loss at the start of each row"
    )
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args()
    bf16 = not args.no_bf16

    model, _ = load_model(args.model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ids, labels, mask = make_batch(model.config.vocab_size, args.batch, args.length, args.prompt)
    # The cache the constrained objective builds once before training (here: for this batch).
    with torch.no_grad(), autocast_context(bf16):
        logp = token_logprobs(model(input_ids=ids, attention_mask=mask).logits, labels)
    ref = torch.zeros(labels.shape)
    ref[:, 1:][answer_mask(labels)] = logp.float()

    step(model, optimizer, ids, mask, labels, bf16)  # warm-up (allocations, autocast caches)
    # Interleave the two so load changes on a shared machine hit both alike.
    sft_times, constrained_times = [], []
    for _ in range(args.repeats):
        sft_times += timed(lambda: step(model, optimizer, ids, mask, labels, bf16), 1)
        constrained_times += timed(lambda: step(model, optimizer, ids, mask, labels, bf16, ref), 1)
    sft_s, con_s = statistics.median(sft_times), statistics.median(constrained_times)
    tokens = int(mask.sum())
    print(
        f"model={args.model} batch={args.batch}x{args.length} bf16={bf16} repeats={args.repeats} threads={torch.get_num_threads()}"
    )
    print(f"sft step (baseline):  {sft_s:.3f} s median  ({tokens / sft_s:.0f} tokens/s)")
    print(f"constrained step:     {con_s:.3f} s median  ({tokens / con_s:.0f} tokens/s)")
    print(f"ratio constrained/sft: {con_s / sft_s:.3f} (target <= 1.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
