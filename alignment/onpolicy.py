"""On-policy preference pairs: the model's own sampled mistakes, as the answers to push down.

The `preference` objective's harmless pairs reject refusals from the bank, written the way the bank
writes them. Recipe P (docs/evaluation.md) learnt that contrast greedily, yet at the API's default
temperature it still refused harmless prompts and switched to a refusal mid-answer more often than
the served default did: the refusals it samples are not the bank's. This module samples the model
itself at temperature 1.0 and turns each mistake into a pair for the same context:

- harmless prompt, refused from the start: chosen = the reference answer of `data build`,
  rejected = the refusal it sampled;
- harmless prompt, refusal after the watch's start window (spurious recovery): the context is the
  answer up to the switch, chosen = a continuation from there that does not refuse (greedy, else
  sampled), rejected = the switch it sampled;
- harmful prompt, not refused: chosen = the triplet's refusal, rejected = what it sampled.

Rows are text (`{"side", "kind", "prompt", "context", "chosen", "rejected"}`), so a file mined from
one model can train another; `preference_example` tokenises one for `train --onpolicy-pairs`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from alignment.evaluate.breadth import START_WINDOW
from alignment.evaluate.generate import Completion, Sampling
from alignment.evaluate.recovery import onset_tokens

KINDS = ("harmless-refused", "harmless-recovered", "harmful-complied")
# Fields that must be non-empty text; "context" is empty for a pair at the answer's first token.
ONPOLICY_FIELDS = ("side", "prompt", "chosen", "rejected")
ONPOLICY_SIDES = ("harmful", "harmless")
# Words a refusal opens with before the phrase the judge recognises ("I'm | sorry, but").
REFUSAL_LEAD_IN = re.compile(r"(?:I|I'm|I am|Sorry,?|Unfortunately,?)\s*$")


def verdict(completion: Completion, detector) -> tuple[str, int | None]:
    """('helpful' | 'refused' (onset inside the start window) | 'recovered' (a later switch),
    the refusal's first token or None)."""
    found = onset_tokens(completion.token_texts, detector)
    if found is None:
        return "helpful", None
    onset = found[0]
    return ("refused" if onset < START_WINDOW else "recovered"), onset


def switch_point(completion: Completion, onset: int) -> tuple[str, str]:
    """(the answer before the refusal, the rest) of a recovered answer whose refusal the judge
    found at token `onset` (see `verdict`)."""
    pieces = completion.token_texts
    # The judge's onset can fall after the refusal's lead-in ("DIYI'm | sorry"), and a refusal can
    # be glued to the word before it ("travelI can't"): the switch starts at that word, so that no
    # context ends half-way into a refusal.
    while onset > 0:
        glued = not pieces[onset][:1].isspace() and not pieces[onset - 1][-1:].isspace()
        if not glued and not REFUSAL_LEAD_IN.search("".join(pieces[:onset])):
            break
        onset -= 1
    return "".join(pieces[:onset]), "".join(pieces[onset:])


def harmless_pairs(
    prompt: str, samples: list[Completion], reference: str, detector
) -> tuple[list[dict], list[dict]]:
    """Pairs for one harmless prompt: (finished pairs, recovered answers still lacking a chosen
    continuation). A refusal from the start is paired with the reference answer: a greedy answer
    already checked to help, where a sample at temperature 1.0 is often rambling."""
    done, pending = [], []
    for sample in samples:
        v, onset = verdict(sample, detector)
        if v == "refused":
            done.append(_row("harmless", "harmless-refused", prompt, "", reference, sample.answer))
        elif v == "recovered":
            context, switch = switch_point(sample, onset)
            pending.append(_row("harmless", "harmless-recovered", prompt, context, None, switch))
    return done, pending


def harmful_pairs(
    prompt: str, samples: list[Completion], refusal: str, detector, aware
) -> list[dict]:
    """Every sampled answer to a harmful prompt that neither judge calls a refusal (the phrase
    judge alone misses refusals glued to a word, e.g. "MBZUAII can't help")."""
    return [
        _row("harmful", "harmful-complied", prompt, "", refusal, s.answer)
        for s in samples
        if not _refuses(s.answer, prompt, detector, aware)
    ]


def _refuses(answer: str, prompt: str, detector, aware) -> bool:
    return detector.is_refusal(answer) or aware.is_refusal(answer, prompt)


def _row(side, kind, prompt, context, chosen, rejected) -> dict:
    return {
        "side": side,
        "kind": kind,
        "prompt": prompt,
        "context": context,
        "chosen": chosen,
        "rejected": rejected,
    }


@dataclass(frozen=True)
class MiningConfig:
    samples: int = 4  # sampled answers per prompt
    continuation_tries: int = 2  # continuations per recovered answer (greedy, then sampled)
    max_new_tokens: int = 64
    seed: int = 0


def mine_pairs(
    generator, harmless: list[dict], triplets: list[dict], config: MiningConfig, detector, aware
) -> tuple[list[dict], dict]:
    """Sample every prompt `config.samples` times at temperature 1.0 and pair each mistake.

    `harmless` rows are `{prompt, response}`, `triplets` rows `{prompt, refusal, ...}` (the files
    of `deepguard data build`). Returns the rows and counts of what was found.
    """
    temperature = lambda seed: Sampling(1.0, 1.0, seed, config.max_new_tokens)  # noqa: E731
    harmless_prompts = [r["prompt"] for r in harmless]
    refusal_of = {}
    for t in triplets:
        refusal_of.setdefault(t["prompt"], t["refusal"])
    harmful_prompts = list(refusal_of)

    def sample(prompts, label):
        runs = [
            generator.complete(
                prompts,
                [[] for _ in prompts],
                temperature(config.seed + i),
                desc=f"{label} sample {i + 1}/{config.samples}",
            )
            for i in range(config.samples)
        ]
        return [list(per_prompt) for per_prompt in zip(*runs, strict=True)]

    rows, pending = [], []
    if harmless_prompts:
        for row, samples in zip(harmless, sample(harmless_prompts, "harmless"), strict=True):
            done, waiting = harmless_pairs(row["prompt"], samples, row["response"], detector)
            rows += done
            pending += waiting
    rows += _continue_helpfully(generator, pending, config, detector, aware)
    if harmful_prompts:
        for prompt, samples in zip(
            harmful_prompts, sample(harmful_prompts, "harmful"), strict=True
        ):
            rows += harmful_pairs(prompt, samples, refusal_of[prompt], detector, aware)
    counts = Counter(r["kind"] for r in rows)
    summary = {
        "harmless_prompts": len(harmless_prompts),
        "harmful_prompts": len(harmful_prompts),
        "samples_per_prompt": config.samples,
        "harmless_recovered_without_helpful_continuation": len(pending)
        - counts["harmless-recovered"],
        **{kind: counts[kind] for kind in KINDS},
    }
    return rows, summary


def _continue_helpfully(
    generator, pending: list[dict], config: MiningConfig, detector, aware
) -> list[dict]:
    """Fills each recovered answer's chosen side with a continuation that does not refuse: greedy
    first (the cleanest text), then sampled at temperature 1.0. The whole answer is judged by both
    judges, as a switch can start inside the context. Answers with no such
    continuation after `continuation_tries` are left out."""
    from alignment.chat import encode_text

    finished = []
    for attempt in range(config.continuation_tries):
        if not pending:
            break
        contexts = [encode_text(generator.tokenizer, r["context"]) for r in pending]
        temperature = 0.0 if attempt == 0 else 1.0
        continued = generator.complete(
            [r["prompt"] for r in pending],
            contexts,
            Sampling(temperature, 1.0, config.seed + attempt, config.max_new_tokens),
            desc=f"continuing recovered answers, try {attempt + 1}",
        )
        still = []
        for row, done in zip(pending, continued, strict=True):
            answer = row["context"] + done.text
            if done.text.strip() and not _refuses(answer, row["prompt"], detector, aware):
                finished.append({**row, "chosen": done.text})
            else:
                still.append(row)
        pending = still
    return finished


def preference_example(tokenizer, row: dict, answer_tokens: int = 64, system: str | None = None):
    """A mined row as a `{"chosen", "rejected"}` preference example (`alignment.preference`)."""
    from alignment.chat import encode_text, encode_turn
    from alignment.preference import ANCHORED, CAPPED, GUARDED, answer_row

    start = row.get("context") or ""
    turn = encode_turn(tokenizer, row["prompt"], start + row["chosen"], system)
    context = turn.prompt_ids + (encode_text(tokenizer, start) if start else [])
    chosen = encode_text(tokenizer, row["chosen"]) + turn.end_ids
    rejected = encode_text(tokenizer, row["rejected"]) + turn.end_ids
    return {
        "chosen": {
            **answer_row(context, chosen[:answer_tokens]),
            GUARDED: row["side"] != "harmful",
            ANCHORED: row["side"] == "harmful" and not start,
            CAPPED: row["side"] != "harmful" and not start,
        },
        "rejected": answer_row(context, rejected[:answer_tokens]),
    }
