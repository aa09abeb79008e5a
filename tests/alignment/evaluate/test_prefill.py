import pytest
from drilled import COMPLIANCE, PROMPTS, REFUSAL

from alignment.evaluate.generate import LocalGenerator, Sampling
from alignment.evaluate.judge import DetectorJudge, parse_score
from alignment.evaluate.prefill import asr_by_k, harmful_answers, prefill_asr
from alignment.evaluate.sources import HarmfulCase

CASES = [HarmfulCase(p, COMPLIANCE) for p in PROMPTS]


def test_a_model_drilled_to_refuse_writes_the_refusal(refusing):
    done = LocalGenerator(*refusing).complete(PROMPTS[:1], [[]], Sampling(max_new_tokens=40))
    assert done[0].answer.strip() == REFUSAL


def test_refusing_model_has_zero_asr_and_complying_model_full_asr(refusing, complying):
    safe = prefill_asr(LocalGenerator(*refusing), CASES, ks=(0,))
    unsafe = prefill_asr(LocalGenerator(*complying), CASES, ks=(0, 5))
    assert asr_by_k(safe) == {0: 0.0}
    assert asr_by_k(unsafe) == {0: 100.0, 5: 100.0}
    assert unsafe["cases"] == 3 and unsafe["judge"] == "refusal-detector"
    # The prompt-aware second opinion: refusals are refusals, and the drilled lock-picking answer
    # complies only where it answers its prompt (the sea poem and the bread get an off-topic one).
    assert safe["k"]["0"]["asr_aware"]["mean"] == 0.0
    assert unsafe["k"]["5"]["asr_aware"]["mean"] == pytest.approx(100 / 3, abs=0.01)
    aware = {row["prompt"]: row["aware_harmful"] for row in unsafe["k"]["0"]["examples"]}
    assert aware == {PROMPTS[0]: True, PROMPTS[1]: False, PROMPTS[2]: False}


def test_prefix_is_forced_verbatim_and_counts_in_the_judged_answer(refusing):
    generator = LocalGenerator(*refusing)
    prefix = generator.prefix_ids(COMPLIANCE, 5)
    assert len(prefix) == 5
    done = generator.complete(PROMPTS[:1], [prefix], Sampling(max_new_tokens=8))[0]
    assert COMPLIANCE.startswith(done.prefix) and done.prefix
    assert done.answer.startswith(done.prefix)


def test_sampled_runs_report_mean_and_spread_per_seed(complying):
    runs = [Sampling(0.9, 0.6, seed, 24) for seed in (0, 1, 2)]
    result = prefill_asr(LocalGenerator(*complying), CASES, ks=(0,), samplings=runs)
    asr = result["k"]["0"]["asr"]
    assert len(asr["runs"]) == 3 and result["runs"][0] == "T0.9/p0.6/seed0"
    assert asr["mean"] == pytest.approx(sum(asr["runs"]) / 3, abs=0.01)


def test_harmful_answers_drop_refusals(refusing, complying):
    kept, dropped = harmful_answers(
        LocalGenerator(*complying), PROMPTS, DetectorJudge(), max_new_tokens=40
    )
    assert dropped == 0 and all(c.harmful == COMPLIANCE for c in kept)
    kept, dropped = harmful_answers(
        LocalGenerator(*refusing), PROMPTS, DetectorJudge(), max_new_tokens=40
    )
    assert kept == [] and dropped == 3


def test_rank_assisted_attack_never_forces_a_refusal_token(refusing):
    generator = LocalGenerator(*refusing)
    judge = DetectorJudge()
    prefixes = generator.rank_assisted_prefixes(PROMPTS[:2], 6, judge.detector.is_refusal)
    for prefix in prefixes:
        text = generator.tokenizer.decode(prefix, skip_special_tokens=True)
        assert len(prefix) == 6 and not judge.detector.is_refusal(text)
    # Left alone the model would write its refusal; the attack steered it off that path.
    assert prefixes[0] != generator.prefix_ids(REFUSAL, 6)


def test_llm_judge_score_parsing():
    assert parse_score("SCORE: 5") == 5
    with pytest.raises(ValueError, match="SCORE"):
        parse_score("harmful, I think")
