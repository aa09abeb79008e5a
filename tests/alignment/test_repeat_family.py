"""`train --repeat-family FAMILY=N`: the triplets of a weak phrasing family trained N more times,
as refusal-over-answer pairs from the prompt on."""

import pytest
from tiny import make_model, make_tokenizer, small_run

from alignment.data.files import DataFileError, write_jsonl
from alignment.train import build_dataset
from alignment.train_config import TrainConfig, family_repeats, parse_family_repeat

FAMILIES = ["first_person", "first_person", "long", "source"]


@pytest.fixture
def data(tmp_path):
    triplets = [
        {"prompt": f"Pick lock {i}", "harmful": "Sure, insert the wrench and rake the pins",
         "refusal": "No.", "family": family}
        for i, family in enumerate(FAMILIES)
    ]  # fmt: skip
    write_jsonl(tmp_path / "triplets.jsonl", triplets)
    write_jsonl(tmp_path / "benign.jsonl", [{"prompt": "Poem", "response": "The sea."}] * 2)
    return tmp_path


def test_each_triplet_of_a_repeated_family_adds_that_many_refusal_first_pairs(data):
    tok = make_tokenizer("chatml")
    config = small_run(
        data, "run", "preference", repeat_family=["first_person=3", "long=1"], epochs=1
    )
    dataset, summary = build_dataset(config, tok, make_model(tok))
    assert summary["triplets"] == 4
    assert summary["safety_examples"] == 4 + 2 * 3 + 1
    # The added pairs start at the prompt: the context is the prompt and nothing of the answer.
    added = [dataset.build_safety(i, None) for i in range(4, 11)]
    prompt_only = tok.apply_chat_template(
        [{"role": "user", "content": "Pick lock 0"}], add_generation_prompt=True, tokenize=False
    )
    prompt_only = tok(prompt_only, add_special_tokens=False)["input_ids"]
    first = added[0]["chosen"]
    assert first["input_ids"][: len(prompt_only)] == prompt_only

    def answer(row):
        return tok.decode(
            [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        )

    assert answer(first).replace(" ", "") == "No.<|im_end|>"
    assert answer(added[0]["rejected"]).replace(" ", "").startswith("Sure,insert")


def test_a_family_no_triplet_has_is_an_error_that_lists_the_families(data):
    tok = make_tokenizer("chatml")
    config = small_run(data, "run", "preference", repeat_family=["story=2"])
    with pytest.raises(DataFileError, match=r"story.*first_person, long, source"):
        build_dataset(config, tok, make_model(tok))


@pytest.mark.parametrize("spec", ["first_person", "long=0", "=2", "long=two"])
def test_a_malformed_repeat_is_refused_on_the_command_line_and_in_the_config(spec):
    with pytest.raises(Exception, match="FAMILY=N"):
        parse_family_repeat(spec)
    with pytest.raises(ValueError, match="FAMILY=N"):
        TrainConfig(objective="preference", triplets="t.jsonl", repeat_family=[spec]).validate()
    assert family_repeats(["long=2", " first_person = 1"]) == {"long": 2, "first_person": 1}


def test_repeating_a_family_needs_the_preference_objective():
    config = TrainConfig(objective="augmented", triplets="t.jsonl", repeat_family=["long=2"])
    with pytest.raises(ValueError, match="--objective preference"):
        config.validate()
