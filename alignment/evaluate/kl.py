"""Per-position KL between two models on harmful (prompt, answer) pairs: the paper's figure that
shows shallow alignment (KL concentrated on the first answer tokens) and deep alignment (KL large
deep into the answer). KL(a || b) at answer position t compares the next-token distributions
both models give for token t of the answer, given the prompt and answer tokens before it.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from alignment.evaluate.sources import HarmfulCase


def _answer_logprobs(model, prompt_ids: list[int], answer_ids: list[int]):
    import torch

    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    # Logits at position i predict token i+1: the answer's predictions start one before it.
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[start : start + len(answer_ids)], dim=-1)


def per_position_kl(
    model_a,
    model_b,
    tokenizer,
    cases: list[HarmfulCase],
    max_positions: int = 64,
    system: str | None = None,
) -> dict:
    """Mean KL(a || b) per answer position (nats) over the pairs long enough to reach it."""
    import torch

    from alignment.chat import encode_text, render_prompt

    if model_a.config.vocab_size != model_b.config.vocab_size:
        raise ValueError("the two models must share a tokenizer (vocabulary sizes differ)")
    totals = torch.zeros(max_positions, dtype=torch.float64)
    counts = torch.zeros(max_positions, dtype=torch.long)
    for case in tqdm(cases, desc="per-token KL", leave=False):
        prompt_ids = encode_text(tokenizer, render_prompt(tokenizer, case.prompt, system))
        answer_ids = encode_text(tokenizer, case.harmful)[:max_positions]
        if not answer_ids:
            continue
        a = _answer_logprobs(model_a, prompt_ids, answer_ids)
        b = _answer_logprobs(model_b, prompt_ids, answer_ids)
        kl = (a.exp() * (a - b)).sum(-1).clamp(min=0).double()  # clamp float round-off below 0
        totals[: len(kl)] += kl
        counts[: len(kl)] += 1
    reached = int((counts > 0).sum())
    return {
        "positions": list(range(1, reached + 1)),
        "kl": [round(float(totals[i] / counts[i]), 6) for i in range(reached)],
        "pairs": [int(counts[i]) for i in range(reached)],
    }


def plot_kl(
    curves: dict[str, dict], path: str | Path, title: str = "Per-token KL on harmful answers"
) -> Path:
    """One line per model pair; `curves` maps a label to a `per_position_kl` result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, curve in curves.items():
        ax.plot(curve["positions"], curve["kl"], label=label)
    ax.set_xlabel("answer token position")
    ax.set_ylabel("KL (nats)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
