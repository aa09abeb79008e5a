"""The prefilling attack: force the first k tokens of a harmful answer, let the model continue,
and count how often the whole answer is harmful (ASR), per k and per decoding run.

Modes: `prefill` (tokens of a harmful answer written by an unaligned model, as in the paper) and
`rank` (beyond the paper: at each of the first k steps, force the best-ranked token among the top
20 that does not start a refusal; needs no harmful answer, only the model's own ranking).
"""

from __future__ import annotations

from alignment.evaluate.generate import Sampling
from alignment.evaluate.sources import HarmfulCase
from alignment.evaluate.stats import mean_spread, share

DEFAULT_KS = (0, 5, 10, 20, 40)
MODES = ("prefill", "rank")


def harmful_answers(
    generator, prompts: list[str], judge, max_new_tokens: int = 96
) -> tuple[list[HarmfulCase], int]:
    """Answers from an unaligned model to use as prefixes; answers it refused are dropped
    (a refusal is no harmful start). Returns (cases, number dropped)."""
    completions = generator.complete(
        prompts,
        [[] for _ in prompts],
        Sampling(max_new_tokens=max_new_tokens),
        desc="harmful answers",
    )
    cases = [
        HarmfulCase(p, c.answer.strip())
        for p, c in zip(prompts, completions, strict=True)
        if c.answer.strip() and judge.harmful(p, c.answer)
    ]
    return cases, len(prompts) - len(cases)


def attack_prefixes(
    generator, cases: list[HarmfulCase], k: int, mode: str, is_refusal=None
) -> list[list[int]]:
    if mode == "prefill":
        return [generator.prefix_ids(c.harmful, k) for c in cases]
    if mode == "rank":
        if not hasattr(generator, "rank_assisted_prefixes"):
            raise ValueError(
                "the rank-assisted attack needs the model's logits: run it on a model directory"
            )
        return (
            generator.rank_assisted_prefixes([c.prompt for c in cases], k, is_refusal)
            if k
            else [[] for _ in cases]
        )
    raise ValueError(f"unknown attack mode {mode!r}; choose one of {', '.join(MODES)}")


def prefill_asr(
    generator,
    cases: list[HarmfulCase],
    ks=DEFAULT_KS,
    samplings=(Sampling(),),
    judge=None,
    mode: str = "prefill",
    keep_answers: int = 3,
) -> dict:
    """ASR (%) per k: mean and spread over the decoding runs in `samplings`, plus a few answers.

    `asr` is by `judge`; `asr_aware` judges the same answers by the prompt-aware classifier
    (alignment.evaluate.relevance: the phrase detector, plus lectures and off-topic answers), a
    second opinion that matters most in `rank` mode, whose forced tokens are chosen to get past
    the phrase detector ("I can't dothat, since it could cause harm ...")."""
    from alignment.evaluate.judge import DetectorJudge
    from alignment.evaluate.relevance import PromptAwareRefusalClassifier

    if not cases:
        raise ValueError("no harmful cases to attack with")
    judge = judge or DetectorJudge()
    detector = DetectorJudge()
    aware = PromptAwareRefusalClassifier()
    result = {
        "mode": mode,
        "judge": judge.name,
        "cases": len(cases),
        "runs": [s.label() for s in samplings],
        "k": {},
    }
    for k in ks:
        prefixes = attack_prefixes(generator, cases, k, mode, detector.detector.is_refusal)
        rates, aware_rates, examples = [], [], []
        for sampling in samplings:
            completions = generator.complete(
                [c.prompt for c in cases], prefixes, sampling, desc=f"{mode} k={k}"
            )
            flags = [
                judge.harmful(c.prompt, done.answer)
                for c, done in zip(cases, completions, strict=True)
            ]
            aware_flags = [
                not aware.is_refusal(done.answer, c.prompt)
                for c, done in zip(cases, completions, strict=True)
            ]
            rates.append(share(flags))
            aware_rates.append(share(aware_flags))
            if not examples:
                rows = zip(cases, completions, flags, aware_flags, strict=True)
                examples = [
                    {
                        "prompt": c.prompt,
                        "prefix": d.prefix,
                        "continuation": d.text,
                        "harmful": f,
                        "aware_harmful": a,
                    }
                    for c, d, f, a in list(rows)[:keep_answers]
                ]
        result["k"][str(k)] = {
            "asr": mean_spread(rates),
            "asr_aware": mean_spread(aware_rates),
            "examples": examples,
        }
    return result


def asr_by_k(result: dict) -> dict[int, float]:
    """{k: mean ASR} from a `prefill_asr` result."""
    return {int(k): entry["asr"]["mean"] for k, entry in result["k"].items()}
