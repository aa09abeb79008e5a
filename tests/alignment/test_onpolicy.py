"""On-policy preference pairs (alignment/onpolicy.py): judging samples, splitting a mid-answer
switch, the rows for each kind of mistake, and training on them."""

import json

import pytest
from tiny import make_model, make_tokenizer, small_run

from alignment.data.files import write_jsonl
from alignment.evaluate.generate import Completion
from alignment.evaluate.relevance import PromptAwareRefusalClassifier
from alignment.objectives import IGNORE_INDEX
from alignment.onpolicy import (
    harmful_pairs,
    harmless_pairs,
    preference_example,
    switch_point,
    verdict,
)
from alignment.train import train
from alignment.train_config import TrainConfig
from proxy.watch.detector import RefusalDetector

DETECTOR = RefusalDetector.default()
AWARE = PromptAwareRefusalClassifier(DETECTOR)
PROMPT = "Give me a short list of cheap hobbies to try this year."


def _sample(*pieces: str) -> Completion:
    return Completion("", "".join(pieces), pieces)


HELPFUL = _sample("Sure", ",", " try", " hiking", ",", " baking", " and", " chess", ".")
REFUSED = _sample(
    "I", "'m", " sorry", ",", " but", " I", " can", "'t", " help", " with", " that", "."
)
RECOVERED = _sample(
    "1", ".", " Hiking", " is", " cheap", " and", " fun", ".", " I", "'m", " sorry", ",", " but",
    " I", " can", "'t", " help", " with", " that", ".",
)  # fmt: skip


def test_a_refusal_counts_as_a_switch_only_after_the_watch_start_window():
    assert verdict(HELPFUL, DETECTOR)[0] == "helpful"
    assert verdict(REFUSED, DETECTOR)[0] == "refused"
    assert verdict(RECOVERED, DETECTOR)[0] == "recovered"


@pytest.mark.parametrize(
    ("pieces", "context"),
    [
        # the judge's onset is "sorry"; the lead-in "I'm" belongs to the switch
        (RECOVERED.token_texts, "1. Hiking is cheap and fun."),
        # a refusal glued to the word before it: the whole word goes to the switch
        (("1", ".", " Cross", "-", "country", " travel", "I", " can", "'t", " help"),
         "1. Cross-country"),
        (("1", ".", " DIY", ":", " DIY", "I", "'m", " sorry", ",", " but", " I", " can", "'t", " help"),
         "1. DIY:"),
    ],
)  # fmt: skip
def test_the_switch_starts_where_the_refusal_starts_never_inside_it(pieces, context):
    sample = _sample(*pieces)
    before, switch = switch_point(sample, verdict(sample, DETECTOR)[1])
    assert before == context
    assert before + switch == "".join(pieces)
    assert not DETECTOR.is_refusal(before) and DETECTOR.is_refusal(switch)


def test_harmless_refusals_are_paired_with_the_reference_and_switches_wait_for_a_continuation():
    done, pending = harmless_pairs(PROMPT, [HELPFUL, REFUSED, RECOVERED], "Try chess.", DETECTOR)
    assert done == [
        {
            "side": "harmless",
            "kind": "harmless-refused",
            "prompt": PROMPT,
            "context": "",
            "chosen": "Try chess.",
            "rejected": REFUSED.answer,
        }
    ]
    [waiting] = pending
    assert waiting["kind"] == "harmless-recovered" and waiting["chosen"] is None
    assert waiting["context"] == "1. Hiking is cheap and fun."
    assert waiting["rejected"] == " I'm sorry, but I can't help with that."


def test_harmful_pairs_keep_only_answers_neither_judge_calls_a_refusal():
    prompt = "How do I pick my neighbour's lock?"
    complied = _sample(
        "Sure", ",", " to", " pick", " the", " lock", " insert", " a", " wrench", "."
    )
    glued = _sample("Pick", "I", " can", "'t", " help", " with", " that", ".")
    rows = harmful_pairs(prompt, [complied, REFUSED, glued], "I won't help.", DETECTOR, AWARE)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("I won't help.", complied.answer)]


def test_a_mined_row_becomes_a_pair_that_shares_its_context_and_trains_only_the_answers():
    tok = make_tokenizer("chatml")
    row = {
        "side": "harmless",
        "prompt": PROMPT,
        "context": "1. Hiking is cheap.",
        "chosen": " 2. Baking bread at home.",
        "rejected": " I'm sorry, but I can't help with that.",
    }
    pair = preference_example(tok, row, answer_tokens=64)
    contexts, answers = [], []
    for side in ("chosen", "rejected"):
        ex = pair[side]
        mask = [label == IGNORE_INDEX for label in ex["labels"]]
        contexts.append([t for t, m in zip(ex["input_ids"], mask, strict=True) if m])
        answers.append(tok.decode([t for t, m in zip(ex["input_ids"], mask, strict=True) if not m]))
    assert contexts[0] == contexts[1]
    assert tok.decode(contexts[0]).endswith("1. Hiking is cheap.")
    assert answers[0].replace(" ", "") == (row["chosen"] + "<|im_end|>").replace(" ", "")
    assert answers[1].replace(" ", "") == (row["rejected"] + "<|im_end|>").replace(" ", "")
    short = preference_example(tok, row, answer_tokens=3)
    assert sum(label != IGNORE_INDEX for label in short["rejected"]["labels"]) == 3
    # A helpful answer is the switch guard's; a refusal of a harmful prompt the anchor's.
    assert pair["chosen"]["guarded"] and not pair["chosen"]["anchored"]
    assert not pair["chosen"]["capped"]  # after a forced start: the ceiling is for first tokens
    assert preference_example(tok, {**row, "context": ""})["chosen"]["capped"]
    harmful = preference_example(tok, {**row, "side": "harmful", "context": ""})
    assert harmful["chosen"]["anchored"] and not harmful["chosen"]["guarded"]
    recovery = preference_example(tok, {**row, "side": "harmful"})
    assert not recovery["chosen"]["anchored"]  # after a forced start: not the answer's start


def test_onpolicy_pairs_join_the_preference_run_on_their_side(tmp_path):
    triplets = [
        {
            "prompt": f"Pick lock {i}",
            "harmful": "Sure, insert the wrench and rake",
            "refusal": "No.",
        }
        for i in range(4)
    ]
    pairs = [{"prompt": f"Poem {i}", "response": "The sea and the moon."} for i in range(4)]
    mined = [
        {"side": "harmless", "kind": "harmless-refused", "prompt": "Poem 0", "context": "",
         "chosen": "The sea.", "rejected": "I can't help with that."},
        {"side": "harmless", "kind": "harmless-recovered", "prompt": "Poem 1",
         "context": "The sea", "chosen": " and the moon.", "rejected": " I can't help."},
        {"side": "harmful", "kind": "harmful-complied", "prompt": "Pick lock 0", "context": "",
         "chosen": "No.", "rejected": "Sure, rake the pins."},
    ]  # fmt: skip
    write_jsonl(tmp_path / "triplets.jsonl", triplets)
    write_jsonl(tmp_path / "benign.jsonl", pairs)
    write_jsonl(tmp_path / "onpolicy.jsonl", mined)
    tok = make_tokenizer("chatml")
    config = small_run(
        tmp_path, "run", "preference", onpolicy_pairs=str(tmp_path / "onpolicy.jsonl"), epochs=1
    )
    summary = train(config, model=make_model(tok), tokenizer=tok)
    assert (summary["safety_examples"], summary["benign_examples"]) == (5, 6)
    assert summary["optimizer_steps"] == 3  # 6 benign examples, 2 per step
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert any("rewards/margins" in entry for entry in log)


def test_onpolicy_pairs_need_the_preference_objective():
    config = TrainConfig(objective="augmented", triplets="t.jsonl", onpolicy_pairs="o.jsonl")
    with pytest.raises(ValueError, match="--objective preference"):
        config.validate()


def test_a_mined_row_on_an_unknown_side_is_a_clear_error(tmp_path):
    from alignment.data.files import DataFileError

    write_jsonl(tmp_path / "triplets.jsonl", [{"prompt": "p", "harmful": "h", "refusal": "No."}])
    write_jsonl(tmp_path / "benign.jsonl", [{"prompt": "q", "response": "A."}])
    row = {"side": "benign", "prompt": "q", "context": "", "chosen": "A.", "rejected": "No."}
    write_jsonl(tmp_path / "onpolicy.jsonl", [row])
    config = small_run(
        tmp_path, "run", "preference", onpolicy_pairs=str(tmp_path / "onpolicy.jsonl")
    )
    tok = make_tokenizer("chatml")
    with pytest.raises(
        DataFileError, match="onpolicy.jsonl:1: side must be one of harmful, harmless"
    ):
        train(config, model=make_model(tok), tokenizer=tok)
