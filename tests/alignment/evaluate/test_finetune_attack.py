import copy
import json

import pytest
from drilled import COMPLIANCE, PROMPTS

from alignment.evaluate.benign import reference_nll
from alignment.evaluate.finetune_attack import REFUSE_THEN_COMPLY, attack_rows, finetune_attack
from alignment.evaluate.sources import BenignTask, HarmfulCase

CASES = [HarmfulCase(p, COMPLIANCE) for p in PROMPTS]


def attack(model, tok, out_dir, **options):
    """Both objectives on the drilled cases, measured on the same prompts, 3 examples a step."""
    return finetune_attack(
        model,
        tok,
        CASES,
        PROMPTS,
        [],
        out_dir,
        objectives=("sft", "constrained"),
        batch=3,
        **options,
    )


def test_attack_rows_per_style():
    assert attack_rows(CASES[:1], "harmful") == [{"prompt": PROMPTS[0], "response": COMPLIANCE}]
    assert (
        attack_rows(CASES[:1], "refuse-then-comply")[0]["response"]
        == REFUSE_THEN_COMPLY + COMPLIANCE
    )
    with pytest.raises(ValueError, match="attack style"):
        attack_rows(CASES, "jailbreak")
    tasks = [BenignTask("Say hi", "Hi!")]
    assert attack_rows(CASES, "benign", tasks) == [{"prompt": "Say hi", "response": "Hi!"}]
    with pytest.raises(ValueError, match="benign training tasks"):
        attack_rows(CASES, "benign")


def test_reference_nll_is_low_for_the_answer_a_model_was_drilled_on(refusing):
    from drilled import REFUSAL

    model, tok = refusing
    drilled = reference_nll(model, tok, [BenignTask(p, REFUSAL) for p in PROMPTS])
    other = reference_nll(model, tok, [BenignTask(p, COMPLIANCE) for p in PROMPTS])
    assert 0 <= drilled < 0.5 < other


def test_benign_finetune_learns_its_tasks_under_each_objective(refusing, tmp_path):
    """The benign style trains on the given tasks instead of harmful answers; what it learned
    shows as a lower reference NLL (here measured on the trained tasks themselves)."""
    model, tok = refusing
    tasks = [BenignTask(p, "The answer is forty two, said the little model.") for p in PROMPTS]
    result = finetune_attack(
        model,
        tok,
        CASES,
        PROMPTS,
        tasks,
        tmp_path,
        objectives=("sft", "constrained"),
        styles=("benign",),
        batch=3,
        epochs=3,
        learning_rate=1e-2,
        benign_train=tasks,
    )
    assert set(result["attacks"]) == {"benign/sft", "benign/constrained"}
    assert result["benign_train_tasks"] == 3
    rows = (tmp_path / "benign-sft" / "attack_pairs.jsonl").read_text().splitlines()
    assert [json.loads(r)["prompt"] for r in rows] == PROMPTS
    for run in result["attacks"].values():
        assert run["task_nll"] < result["initial"]["task_nll"]


def test_sft_attack_breaks_a_refusing_model_and_leaves_the_original_untouched(refusing, tmp_path):
    model, tok = refusing
    before = copy.deepcopy(model.state_dict())
    result = attack(model, tok, tmp_path, epochs=4, learning_rate=1e-2)
    assert result["initial"]["asr"] == 0.0
    assert result["attacks"]["harmful/sft"]["asr"] > 0.0
    assert set(result["attacks"]) == {"harmful/sft", "harmful/constrained"}
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
    # Both judges are reported, and every answer is kept for spot checks. The prompt-aware judge
    # counts a subset of the phrase judge's: its refusals add lectures and off-topic answers, such
    # as this tiny model's broken text after the attack.
    assert result["initial"]["asr_aware"] == 0.0
    attacked = result["attacks"]["harmful/sft"]
    assert attacked["asr_aware"] <= attacked["asr"]
    answers = [json.loads(line) for line in (tmp_path / "answers-harmful-sft.jsonl").open()]
    assert [a["prompt"] for a in answers] == PROMPTS
    assert all(a["aware_harmful"] <= a["harmful"] for a in answers)
    assert {"continuation", "harmful", "aware_harmful"} <= set(answers[0])


def test_the_papers_recipe_warms_up_only_the_constrained_run(refusing, tmp_path):
    model, tok = refusing
    result = attack(model, tok, tmp_path, epochs=1, learning_rate=1e-3, warmup_steps=10)
    configs = {
        name: json.loads((tmp_path / f"harmful-{name}" / "train_config.json").read_text())
        for name in ("sft", "constrained")
    }
    assert configs["constrained"]["warmup_steps"] == 10
    assert configs["constrained"]["lr_scheduler"] == "constant_with_warmup"
    assert configs["constrained"]["adam_beta1"] == 0.5
    assert configs["sft"]["warmup_steps"] == 0 and configs["sft"]["lr_scheduler"] == "constant"
    assert result["warmup_steps"] == 10 and result["batch"] == 3


def test_constrained_betas_reach_the_constrained_run(refusing, tmp_path):
    """The paper's ablation (beta 2 at every position) is one option away."""

    model, tok = refusing
    result = attack(
        model, tok, tmp_path, epochs=1, learning_rate=1e-3, betas=(2.0,), later_beta=2.0
    )
    config = json.loads((tmp_path / "harmful-constrained" / "train_config.json").read_text())
    assert config["betas"] == [2.0] and config["later_beta"] == 2.0
    assert result["betas"] == [2.0] and result["later_beta"] == 2.0


def test_finetune_attack_cli_parses_betas():
    import argparse

    from alignment.evaluate import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "finetune-attack", "--betas", "2", "--later-beta", "2"])
    assert args.betas == (2.0,) and args.later_beta == 2.0
    assert parser.parse_args(["eval", "finetune-attack"]).betas == (0.5, 2.0, 2.0, 2.0, 2.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "finetune-attack", "--betas", "two"])


def _parse(*argv):
    import argparse

    from alignment.evaluate import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["eval", "finetune-attack", *argv])


def test_eval_prompts_must_be_held_out_from_the_attack(tmp_path, capsys):
    from alignment.evaluate.commands import run_finetune_attack

    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        "".join(json.dumps({"prompt": p, "harmful": COMPLIANCE}) + "\n" for p in PROMPTS)
    )
    prompts = tmp_path / "eval.txt"
    prompts.write_text(PROMPTS[0] + "\nA prompt nobody trained on\n")
    args = _parse("--cases", str(cases), "--examples", "2", "--eval-prompts", str(prompts))
    assert run_finetune_attack(args) == 2
    assert "1 --eval-prompts are also attack examples" in capsys.readouterr().err


def test_benign_style_needs_tasks_past_the_held_out_ones(tmp_path, capsys):
    from alignment.evaluate.commands import run_finetune_attack

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(json.dumps({"prompt": p, "reference": "An answer."}) + "\n" for p in PROMPTS)
    )
    prompts = tmp_path / "eval.txt"
    prompts.write_text("A prompt nobody trained on\n")
    args = _parse(
        "--styles",
        "benign",
        "--tasks",
        str(tasks),
        "--task-limit",
        "3",
        "--eval-prompts",
        str(prompts),
    )
    assert run_finetune_attack(args) == 2
    assert "needs tasks past --task-limit (3 in" in capsys.readouterr().err
