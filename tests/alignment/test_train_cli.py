"""`deepguard train`'s flags are generated from TrainConfig: every field has one, and the flags
that the Makefile, docs and scripts use keep their names and meaning."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from alignment.cli import register
from alignment.dataclass_cli import add_dataclass_arguments, cli_fields, dataclass_from_args
from alignment.train_config import DEFAULT_BETAS, OBJECTIVES, TrainConfig

DOCUMENTED_FLAGS = (
    "--objective --model --data --triplets --pairs --no-triplets --out --epochs --max-steps --lr "
    "--adam-beta1 --warmup-steps --safety-per-step --benign-per-step --micro-batch --p-prefix "
    "--max-prefix --p-cautious --max-length --betas --later-beta --no-bf16 --lora-r "
    "--limit-triplets --limit-pairs --save-steps --resume --seed --lr-scheduler --weight-decay"
).split()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser()
    register(root.add_subparsers(dest="command"))
    return root


@pytest.fixture
def train_config(monkeypatch):
    """The TrainConfig that `deepguard train ARGV` would run, without running it."""
    import alignment.train

    def parse(argv: list[str]) -> TrainConfig:
        captured = []
        monkeypatch.setattr(alignment.train, "train", captured.append)
        args = parser().parse_args(["train", *argv])
        assert args.func(args) == 0
        return captured[0]

    return parse


def test_every_documented_flag_exists():
    train = parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    assert set(DOCUMENTED_FLAGS) <= flags


def test_every_config_field_but_extra_is_a_flag():
    names = {f.name for f in cli_fields(TrainConfig)}
    assert names == {f.name for f in dataclasses.fields(TrainConfig)} - {"extra"}


def test_defaults_are_the_dataclass_defaults(train_config):
    config = train_config([])
    assert config == TrainConfig(
        triplets="runs/data/triplets.jsonl", pairs="runs/data/benign.jsonl"
    )
    assert config.betas == DEFAULT_BETAS and config.bf16 and not config.resume


def test_flags_keep_their_meaning(train_config):
    config = train_config(
        "--objective constrained --model SERVED --pairs new.jsonl --no-triplets --out runs/ft "
        "--epochs 2 --max-steps 3 --lr 6e-4 --adam-beta1 0.5 --warmup-steps 2 "
        "--safety-per-step 4 --benign-per-step 8 --micro-batch 4 --p-prefix 0.3 --max-prefix 50 "
        "--p-cautious 0.1 --max-length 256 --betas 1,2,3 --later-beta 0.3 --no-bf16 --lora-r 16 "
        "--limit-triplets 5 --limit-pairs 7 --save-steps 9 --resume --seed 3 "
        "--lr-scheduler cosine --weight-decay 0.01".split()
    )
    assert config == TrainConfig(
        output_dir="runs/ft",
        model="SERVED",
        objective="constrained",
        triplets=None,
        pairs="new.jsonl",
        limit_triplets=5,
        limit_pairs=7,
        epochs=2,
        max_steps=3,
        learning_rate=6e-4,
        adam_beta1=0.5,
        weight_decay=0.01,
        warmup_steps=2,
        lr_scheduler="cosine",
        safety_per_step=4,
        benign_per_step=8,
        micro_batch=4,
        p_prefix=0.3,
        max_prefix=50,
        p_cautious=0.1,
        max_length=256,
        betas=(1.0, 2.0, 3.0),
        later_beta=0.3,
        bf16=False,
        lora_r=16,
        save_steps=9,
        resume=True,
        seed=3,
    )


def test_data_dir_supplies_the_files_unless_given(train_config):
    config = train_config(["--data", "d", "--triplets", "t.jsonl"])
    assert (config.triplets, config.pairs) == ("t.jsonl", "d/benign.jsonl")


def test_objective_choices_come_from_the_config(train_config):
    with pytest.raises(SystemExit):
        train_config(["--objective", "dpo"])
    train = parser()._subparsers._group_actions[0].choices["train"]
    objective = next(a for a in train._actions if "--objective" in a.option_strings)
    assert tuple(objective.choices) == OBJECTIVES


def test_generator_on_a_small_dataclass():
    @dataclasses.dataclass
    class Options:
        name: str = dataclasses.field(default="a", metadata={"flag": "--n", "help": "the name"})
        sizes: tuple = dataclasses.field(
            default=(1,), metadata={"parse": lambda t: tuple(map(int, t.split(",")))}
        )
        fast: bool = True
        limit: int | None = None

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Options)
    args = parser.parse_args(["--n", "b", "--sizes", "2,3", "--no-fast", "--limit", "4"])
    assert dataclass_from_args(Options, args) == Options("b", (2, 3), False, 4)
    assert dataclass_from_args(Options, parser.parse_args([])) == Options()


@pytest.fixture
def build_config(monkeypatch):
    """The BuildConfig that `deepguard data build ARGV` would run, without running it."""
    import alignment.data.build

    def parse(argv: list[str]):
        captured = []
        monkeypatch.setattr(alignment.data.build, "build_data", captured.append)
        args = parser().parse_args(["data", "build", *argv])
        assert args.func(args) == 0
        return captured[0]

    return parse


def test_data_build_flags_come_from_build_config(build_config):
    from alignment.data.build import BuildConfig

    assert build_config([]) == BuildConfig()
    config = build_config(
        "--out runs/x --harmful advbench --harmful extra.txt --benign-file b.jsonl --breadth "
        "--n-harmful 288 --n-contrast -1 --n-source-requests 200 --benign-families-per-core 3 "
        "--teacher-benign --seed 4".split()
    )
    assert config.out_dir == "runs/x"
    assert config.harmful_sources == ["advbench", "extra.txt"]
    assert config.benign_files == ["b.jsonl"]
    assert (config.breadth, config.teacher_benign, config.teacher_refusals) == (True, True, False)
    assert (config.n_harmful, config.n_contrast, config.seed) == (288, -1, 4)
    assert (config.n_source_requests, config.benign_families_per_core) == (200, 3)
    # A repeated flag replaces the default list; it never appends to it (nor mutates it).
    assert build_config([]).harmful_sources == ["advbench"]
