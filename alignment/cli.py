"""CLI verbs of the alignment module: `deepguard data build`, `deepguard train`, `deepguard export`.

Heavy imports (torch, transformers) happen inside the command functions so `deepguard --help`
stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.data.build import BuildConfig
from alignment.dataclass_cli import add_dataclass_arguments, dataclass_from_args
from alignment.train_config import TrainConfig


def register(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="build training data (harmful triplets, benign pairs)"
    )
    data_verbs = data.add_subparsers(dest="data_command", required=True)
    build = data_verbs.add_parser("build", help="write triplets.jsonl and benign.jsonl (seeded)")
    add_dataclass_arguments(build, BuildConfig)
    build.set_defaults(func=_data_build)

    train = subparsers.add_parser(
        "train", help="fine-tune: sft, augmented (deep alignment), constrained, rto"
    )
    # Where the data is found; the run's own options are TrainConfig's fields.
    train.add_argument(
        "--data",
        default="runs/data",
        help="directory from `deepguard data build` (triplets.jsonl, benign.jsonl)",
    )
    train.add_argument(
        "--no-triplets",
        action="store_true",
        help="train on pairs only (e.g. constrained fine-tuning)",
    )
    add_dataclass_arguments(train, TrainConfig)
    train.set_defaults(func=_train)

    export = subparsers.add_parser(
        "export", help="write a servable HF model directory with a model card"
    )
    export.add_argument(
        "--run", default="runs/train", help="training output dir, or any model path"
    )
    export.add_argument("--out", default="runs/export", help="export directory")
    export.set_defaults(func=_export)


def _data_build(args: argparse.Namespace) -> int:
    from alignment.data.build import build_data

    build_data(dataclass_from_args(BuildConfig, args))
    return 0


def _train(args: argparse.Namespace) -> int:
    from alignment.train import train

    data = Path(args.data)
    triplets = None if args.no_triplets else (args.triplets or str(data / "triplets.jsonl"))
    pairs = args.pairs or str(data / "benign.jsonl")
    train(dataclass_from_args(TrainConfig, args, triplets=triplets, pairs=pairs))
    return 0


def _export(args: argparse.Namespace) -> int:
    from alignment.export import export_run

    export_run(args.run, args.out)
    return 0
