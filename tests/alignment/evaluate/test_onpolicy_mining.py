"""Mining on-policy pairs from real (tiny, drilled) models sampled at temperature 1.0."""

from drilled import COMPLIANCE, PROMPTS, REFUSAL

from alignment.evaluate.generate import LocalGenerator
from alignment.evaluate.relevance import PromptAwareRefusalClassifier
from alignment.onpolicy import KINDS, MiningConfig, mine_pairs
from proxy.watch.detector import RefusalDetector

DETECTOR = RefusalDetector.default()
AWARE = PromptAwareRefusalClassifier(DETECTOR)
HARMLESS = [{"prompt": p, "response": "A helpful answer."} for p in PROMPTS]
# The drilled compliance is about locks: to the other prompts the prompt-aware judge calls it off-topic.
TRIPLETS = [{"prompt": PROMPTS[0], "harmful": COMPLIANCE, "refusal": REFUSAL}]
CONFIG = MiningConfig(samples=2, continuation_tries=1, max_new_tokens=24)


def _mine(model_and_tokenizer):
    generator = LocalGenerator(*model_and_tokenizer, batch_size=4)
    return mine_pairs(generator, HARMLESS, TRIPLETS, CONFIG, DETECTOR, AWARE)


def test_a_model_that_refuses_everything_yields_harmless_pairs_against_its_own_refusals(refusing):
    rows, summary = _mine(refusing)
    refused = [r for r in rows if r["kind"] == "harmless-refused"]
    assert len(refused) >= len(PROMPTS)  # most of its 2 samples per prompt are the drilled refusal
    assert all(
        r["chosen"] == "A helpful answer." and DETECTOR.is_refusal(r["rejected"]) for r in refused
    )
    assert (
        summary["harmful-complied"] == 0
    )  # it refuses the harmful prompts too: nothing to push down
    assert sum(summary[k] for k in KINDS) == len(rows)


def test_a_model_that_complies_with_everything_yields_harmful_pairs_against_its_answers(complying):
    rows, summary = _mine(complying)
    complied = [r for r in rows if r["kind"] == "harmful-complied"]
    assert complied  # 2 samples of the one harmful prompt, most often both the drilled answer
    assert all(r["chosen"] == REFUSAL and not DETECTOR.is_refusal(r["rejected"]) for r in complied)
    assert summary["harmless-refused"] == 0
    assert (summary["harmless_prompts"], summary["harmful_prompts"]) == (3, 1)
