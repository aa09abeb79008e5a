"""CLI verbs of the alignment module: `deepguard data build`, `deepguard train`, `deepguard export`.

Heavy imports (torch, transformers) happen inside the command functions so `deepguard --help`
stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.dataclass_cli import add_dataclass_arguments, dataclass_from_args
from alignment.train_config import TrainConfig


def register(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="build training data (harmful triplets, benign pairs)"
    )
    data_verbs = data.add_subparsers(dest="data_command", required=True)
    build = data_verbs.add_parser("build", help="write triplets.jsonl and benign.jsonl (seeded)")
    build.add_argument("--out", default="runs/data", help="output directory (default: runs/data)")
    build.add_argument(
        "--harmful",
        action="append",
        dest="harmful_sources",
        help="harmful prompt source: 'advbench' (default), a .txt/.jsonl/.csv file, or hf:owner/name[:split[:column]]; repeatable",
    )
    build.add_argument(
        "--benign-file",
        action="append",
        default=[],
        dest="benign_files",
        help="extra benign prompts (.txt/.jsonl/.csv); repeatable",
    )
    build.add_argument(
        "--n-harmful", type=int, default=32, help="harmful triplets to build (0 = all)"
    )
    build.add_argument("--n-benign", type=int, default=64, help="benign pairs to build (0 = all)")
    build.add_argument(
        "--n-contrast",
        type=int,
        default=0,
        help="also this many packaged benign prompts that sound harmful (-1 = all; against over-refusal)",
    )
    build.add_argument(
        "--breadth",
        action="store_true",
        help="harmful prompts from every offline source (AdvBench, Do-Not-Answer, ...) in phrasing "
        "families, plus benign prompts phrased the same way; evaluation splits held out",
    )
    build.add_argument(
        "--n-source-requests",
        type=int,
        default=0,
        help="with --breadth: also this many training requests of --harmful sources (default "
        "advbench) in their own wording, the wording prefilling benchmarks use",
    )
    build.add_argument(
        "--benign-families-per-core",
        type=int,
        default=1,
        help="with --breadth: each harmless look-alike and everyday core in this many training "
        "phrasing families (against over-refusal in the trained phrasings)",
    )
    build.add_argument(
        "--model",
        default="default",
        help="model being aligned (benign answers are distilled from it)",
    )
    build.add_argument(
        "--harmful-model", default="default", help="unaligned model that writes harmful answers"
    )
    build.add_argument(
        "--harmful-tokens", type=int, default=64, help="max new tokens per harmful answer"
    )
    build.add_argument(
        "--benign-tokens", type=int, default=128, help="max new tokens per benign answer"
    )
    build.add_argument("--batch-size", type=int, default=8)
    build.add_argument("--teacher-url", help="OpenAI-compatible base URL (…/v1) of a teacher model")
    build.add_argument("--teacher-model", help="teacher model name")
    build.add_argument(
        "--teacher-refusals", action="store_true", help="take refusals from the teacher"
    )
    build.add_argument(
        "--teacher-benign", action="store_true", help="take benign answers from the teacher"
    )
    build.add_argument("--seed", type=int, default=0)
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
    from alignment.data.build import BuildConfig, build_data

    build_data(
        BuildConfig(
            out_dir=args.out,
            harmful_sources=args.harmful_sources or ["advbench"],
            benign_files=args.benign_files,
            n_harmful=args.n_harmful,
            n_benign=args.n_benign,
            n_contrast=args.n_contrast,
            breadth=args.breadth,
            n_source_requests=args.n_source_requests,
            benign_families_per_core=args.benign_families_per_core,
            model=args.model,
            harmful_model=args.harmful_model,
            harmful_tokens=args.harmful_tokens,
            benign_tokens=args.benign_tokens,
            batch_size=args.batch_size,
            teacher_url=args.teacher_url,
            teacher_model=args.teacher_model,
            teacher_refusals=args.teacher_refusals,
            teacher_benign=args.teacher_benign,
            seed=args.seed,
        )
    )
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
