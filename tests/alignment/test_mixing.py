import pytest

from alignment.mixing import PadCollator, StepMixedDataset, slot_pattern
from alignment.objectives import IGNORE_INDEX


def _dataset(n_safety=10, n_benign=30, s=2, b=6, epochs=3, seed=0):
    return StepMixedDataset(
        n_safety,
        n_benign,
        build_safety=lambda i, rng: {"kind": "safety", "item": i, "k": rng.randint(0, 10**6)},
        build_benign=lambda i: {"kind": "benign", "item": i},
        safety_per_step=s,
        benign_per_step=b,
        epochs=epochs,
        seed=seed,
    )


def test_every_step_holds_the_configured_mix_and_micro_batches_are_balanced():
    ds = _dataset()
    assert ds.steps_per_epoch == 5  # benign needs 30 / 6 = 5 steps; safety cycles
    items = [ds[i] for i in range(len(ds))]
    for step in range(len(ds) // 8):
        kinds = [x["kind"] for x in items[step * 8 : (step + 1) * 8]]
        assert kinds.count("safety") == 2
        # micro-batches of 4 (gradient accumulation 2) each get one safety example
        assert kinds[:4].count("safety") == 1 and kinds[4:].count("safety") == 1


def test_each_epoch_visits_every_example_of_the_larger_set_once():
    ds = _dataset()
    per_epoch = ds.steps_per_epoch * ds.step_size
    for epoch in range(3):
        benign = [
            ds[i]["item"]
            for i in range(epoch * per_epoch, (epoch + 1) * per_epoch)
            if ds[i]["kind"] == "benign"
        ]
        assert sorted(benign) == list(range(30))


def test_random_choices_are_fresh_per_visit_but_reproducible():
    ds = _dataset()
    ks = [ds[i]["k"] for i in range(len(ds)) if ds[i]["kind"] == "safety"]
    assert len(set(ks)) == len(ks)
    assert [_dataset()[i] for i in range(20)] == [ds[i] for i in range(20)]
    assert [_dataset(seed=1)[i] for i in range(40)] != [ds[i] for i in range(40)]


def test_missing_set_gives_its_slots_to_the_other():
    ds = _dataset(n_safety=0, n_benign=16)
    assert ds.step_size == 8 and ds.steps_per_epoch == 2
    assert all(ds[i]["kind"] == "benign" for i in range(len(ds)))


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError):
        _dataset(n_safety=0, n_benign=0)
    with pytest.raises(ValueError):
        _dataset(s=0, b=4)
    with pytest.raises(IndexError):
        _dataset()[10**6]


def test_slot_pattern_spreads_safety_evenly():
    assert slot_pattern(16, 64).count(True) == 16
    assert slot_pattern(1, 3) == [False, False, False, True]


def test_collator_pads_and_aligns_reference_logprobs():
    collate = PadCollator(pad_token_id=0, pad_to_multiple_of=4)
    batch = collate(
        [
            {
                "input_ids": [5, 6, 7],
                "labels": [IGNORE_INDEX, IGNORE_INDEX, 7],
                "ref_logprobs": [-1.5],
            },
            {
                "input_ids": [5, 6, 7, 8, 9],
                "labels": [IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9],
                "ref_logprobs": [-1.0, -2.0, -3.0],
            },
        ]
    )
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum().item() == 8
    assert batch["ref_logprobs"][0].tolist()[:3] == [0, 0, -1.5]
    assert batch["ref_logprobs"][1].tolist()[:5] == [0, -1.0, -2.0, 0, -3.0]
    assert (batch["labels"][0, 3:] == IGNORE_INDEX).all()
