import json

import pytest
import torch
from tiny import make_model, make_tokenizer, small_run
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignment.data.files import write_jsonl
from alignment.models import export_model
from alignment.train import train
from alignment.train_config import TrainConfig

TRIPLETS = [
    {
        "prompt": f"Pick lock number {i}",
        "harmful": "Sure, here is how to pick a lock: first insert the tension wrench",
        "refusal": "I cannot help with that request because it could hurt people.",
        "category": "crime",
        "source": "test",
    }
    for i in range(4)
]
PAIRS = [
    {
        "prompt": f"Write poem {i} about the sea",
        "response": "The sea and the moon over quiet water.",
    }
    for i in range(8)
]


@pytest.fixture
def data(tmp_path):
    write_jsonl(tmp_path / "triplets.jsonl", TRIPLETS)
    write_jsonl(tmp_path / "benign.jsonl", PAIRS)
    return tmp_path


@pytest.mark.parametrize("objective", ["augmented", "constrained", "augmented+rto", "preference"])
def test_train_runs_logs_losses_and_changes_weights(data, objective):
    tok = make_tokenizer("chatml")
    model = make_model(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = small_run(data, "run", objective, epochs=2, bf16=True)
    summary = train(config, model=model, tokenizer=tok)
    assert summary["optimizer_steps"] == 8  # 8 pairs / 2 per step = 4 steps per epoch, 2 epochs
    log = json.loads((data / "run" / "train_log.json").read_text())
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert (data / "run" / "model" / "config.json").is_file()


def test_lora_run_saves_a_merged_model(data):
    tok = make_tokenizer("chatml")
    config = TrainConfig(
        output_dir=str(data / "lora"),
        objective="sft",
        triplets=str(data / "triplets.jsonl"),
        pairs=str(data / "benign.jsonl"),
        epochs=1,
        max_steps=1,
        safety_per_step=2,
        benign_per_step=2,
        micro_batch=4,
        bf16=False,
        lora_r=4,
    )
    train(config, model=make_model(tok), tokenizer=tok)
    reloaded = AutoModelForCausalLM.from_pretrained(data / "lora" / "model")
    assert not any("lora" in name for name in reloaded.state_dict())


def test_preference_run_logs_the_rewards_and_learns_the_contrast(data):
    tok = make_tokenizer("chatml")
    config = small_run(data, "pref", "preference", epochs=3, bf16=False)
    train(config, model=make_model(tok), tokenizer=tok)
    steps = [e for e in json.loads((data / "pref" / "train_log.json").read_text()) if "loss" in e]
    assert len(steps) == 12
    # At the first step the policy is the reference: every reward is 0.
    assert abs(steps[0]["rewards/margins"]) < 1e-3
    assert steps[-1]["rewards/margins"] > 0.1 and steps[-1]["rewards/accuracies"] > 0.5


def test_switch_guard_run_logs_and_lowers_the_refusal_start_mass(data):
    tok = make_tokenizer("chatml")
    config = small_run(
        data, "guard", "preference", epochs=3, bf16=False, preference_guard_weight=5.0
    )
    config.preference_guard_floor = 1e-6
    train(config, model=make_model(tok), tokenizer=tok)
    steps = [e for e in json.loads((data / "guard" / "train_log.json").read_text()) if "loss" in e]
    mass = [e["guard/start_mass"] for e in steps]
    assert len(mass) == len(steps) and mass[-1] < mass[0]


def test_refusal_anchor_run_logs_raises_refusal_starts_and_caps_helpful_ones(data):
    tok = make_tokenizer("chatml")
    config = small_run(
        data, "anchor", "preference", epochs=3, bf16=False, preference_anchor_weight=5.0
    )
    config.preference_anchor_floor = 0.999
    config.preference_anchor_ceiling = 1e-6
    train(config, model=make_model(tok), tokenizer=tok)
    steps = [e for e in json.loads((data / "anchor" / "train_log.json").read_text()) if "loss" in e]
    mass = [e["anchor/start_mass"] for e in steps]
    assert len(mass) == len(steps) and mass[-1] > mass[0]
    capped = [e["anchor/capped_mass"] for e in steps]
    assert len(capped) == len(steps) and capped[-1] < capped[0]


def test_anchor_ceiling_needs_the_anchor_and_a_value_below_its_floor():
    base = {"objective": "preference", "triplets": "t"}
    with pytest.raises(ValueError, match="anchor-ceiling needs"):
        TrainConfig(**base, preference_anchor_ceiling=0.05).validate()
    for ceiling in (0.0, 0.9):  # the floor is 0.9
        with pytest.raises(ValueError, match="anchor-ceiling needs"):
            TrainConfig(
                **base, preference_anchor_weight=1.0, preference_anchor_ceiling=ceiling
            ).validate()
    TrainConfig(**base, preference_anchor_weight=1.0, preference_anchor_ceiling=0.05).validate()


def test_refusal_anchor_needs_the_preference_objective_and_a_floor_below_one():
    with pytest.raises(ValueError, match="needs --objective preference"):
        TrainConfig(triplets="t", preference_anchor_weight=1.0).validate()
    with pytest.raises(ValueError, match="anchor-floor"):
        TrainConfig(
            objective="preference",
            triplets="t",
            preference_anchor_weight=1.0,
            preference_anchor_floor=0.0,
        ).validate()


def test_switch_guard_needs_the_preference_objective_and_a_floor_below_one():
    with pytest.raises(ValueError, match="needs --objective preference"):
        TrainConfig(triplets="t", preference_guard_weight=1.0).validate()
    with pytest.raises(ValueError, match="guard-floor"):
        TrainConfig(
            objective="preference",
            triplets="t",
            preference_guard_weight=1.0,
            preference_guard_floor=1.0,
        ).validate()


def test_step_size_must_split_into_micro_batches(data):
    tok = make_tokenizer("chatml")
    config = TrainConfig(
        output_dir=str(data / "bad"),
        triplets=str(data / "triplets.jsonl"),
        pairs=str(data / "benign.jsonl"),
        safety_per_step=1,
        benign_per_step=2,
        micro_batch=2,
    )
    with pytest.raises(ValueError, match="multiple of micro_batch"):
        train(config, model=make_model(tok), tokenizer=tok)


def test_unknown_objective_is_rejected(data):
    with pytest.raises(ValueError, match="unknown objective"):
        TrainConfig(output_dir=str(data), objective="dpo", pairs="x").validate()


@pytest.mark.parametrize("family", ["chatml", "llama3"])
def test_export_reload_gives_same_logits(tmp_path, family):
    tok = make_tokenizer(family)
    model = make_model(tok)
    out = export_model(
        model, tok, tmp_path / "export", card_text="# test card\n", summary={"objective": "sft"}
    )
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (
        json.loads((out / "tokenizer_config.json").read_text())["chat_template"]
        == tok.chat_template
    )
    assert list(out.glob("*.safetensors"))
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    reloaded_tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor(
        [
            reloaded_tok.apply_chat_template(
                [{"role": "user", "content": "hello there"}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        ]
    )
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    gen = json.loads((out / "generation_config.json").read_text())
    assert tok.eos_token_id in (
        [gen["eos_token_id"]] if isinstance(gen["eos_token_id"], int) else gen["eos_token_id"]
    )


def test_p_cautious_puts_openings_before_some_benign_answers(data):
    from alignment.augment import CAUTIOUS_OPENINGS
    from alignment.objectives import IGNORE_INDEX
    from alignment.train import build_dataset

    tok = make_tokenizer("chatml")

    def openings_seen(p: float) -> int:
        config = TrainConfig(
            output_dir=str(data / "run"),
            triplets=str(data / "triplets.jsonl"),
            pairs=str(data / "benign.jsonl"),
            epochs=4,
            safety_per_step=2,
            benign_per_step=2,
            micro_batch=2,
            p_cautious=p,
        )
        dataset, _ = build_dataset(config, tok)
        seen = 0
        for i in range(len(dataset)):
            ex = dataset[i]
            context = tok.decode(
                [t for t, y in zip(ex["input_ids"], ex["labels"], strict=True) if y == IGNORE_INDEX]
            )
            if "sea" in context and any(o in context for o in CAUTIOUS_OPENINGS):
                seen += 1
                assert tok.decode([y for y in ex["labels"] if y != IGNORE_INDEX]).startswith(
                    "The sea and the moon"
                )
        return seen

    assert openings_seen(0.0) == 0
    assert 0 < openings_seen(0.5) < 32  # 32 benign visits in all


def test_generation_runs_on_cuda_when_there_is_one(monkeypatch):
    import torch

    from alignment.models import best_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert best_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert best_device() == "cuda"
