"""Where refusals begin after a harmful start, and the hold-back window that would hide them.

For each forced harmful start the model continues; the shared detector's scanner is fed the
answer token by token. `onset` is the token where the refusal begins and `recognised` the token
at which the scanner knew it. The proxy's watcher (`watch.hold_back_tokens` = W) has released the
tokens before index r - W when the refusal is recognised at token r, so hiding the whole harmful
start needs W >= r. The window for X% is the X-th percentile of r over recovered answers.
"""

from __future__ import annotations

import math

from alignment.evaluate.generate import Sampling
from alignment.evaluate.sources import HarmfulCase


def onset_tokens(token_texts, detector) -> tuple[int, int] | None:
    """(onset token, recognised-at token) of the first refusal, or None if the answer never refuses."""
    scanner = detector.scanner()
    ends, length, recognised = [], 0, None
    for index, piece in enumerate(token_texts):
        length += len(piece)
        ends.append(length)
        if scanner.feed(piece) is not None:
            recognised = index
            break
    if recognised is None:
        if scanner.close() is None:
            return None
        recognised = len(token_texts) - 1
    onset_char = scanner.onset
    onset = next(i for i, end in enumerate(ends) if end > onset_char)
    return onset, recognised


def window_for(recognised: list[int], coverage: float) -> int:
    """Smallest W such that at least `coverage` (0-1] of the recovered answers are fully hidden."""
    if not 0 < coverage <= 1:
        raise ValueError("coverage must be in (0, 1]")
    if not recognised:
        return 0
    ordered = sorted(recognised)
    return ordered[max(0, math.ceil(coverage * len(ordered)) - 1)]


def recovery_profile(
    generator,
    cases: list[HarmfulCase],
    ks=(5, 10, 20, 40),
    sampling: Sampling = Sampling(),
    coverages=(0.5, 0.9, 0.95, 0.99),
    detector=None,
) -> dict:
    """Onset distribution over all (case, k) attacks and the windows for each coverage."""
    from proxy.watch.detector import RefusalDetector

    if not hasattr(generator, "prompt_ids"):
        raise ValueError("recovery needs token-level answers: run it on a model directory")
    detector = detector or RefusalDetector.default()
    onsets, recognised, per_k = [], [], {}
    for k in ks:
        prefixes = [generator.prefix_ids(c.harmful, k) for c in cases]
        done = generator.complete(
            [c.prompt for c in cases], prefixes, sampling, desc=f"recovery k={k}"
        )
        found = [onset_tokens(d.token_texts, detector) for d in done]
        hits = [f for f in found if f is not None]
        per_k[str(k)] = {"attacks": len(found), "recovered": len(hits)}
        onsets += [o for o, _ in hits]
        recognised += [r for _, r in hits]
    histogram: dict[str, int] = {}
    for value in onsets:
        histogram[str(value)] = histogram.get(str(value), 0) + 1
    return {
        "attacks": len(cases) * len(ks),
        "recovered": len(onsets),
        "per_k": per_k,
        "onset_histogram": dict(sorted(histogram.items(), key=lambda kv: int(kv[0]))),
        "recognised_tokens": sorted(recognised),
        "hold_back_tokens": {f"{round(c * 100)}%": window_for(recognised, c) for c in coverages},
    }
