"""CLI verbs of the alignment module: `deepguard data build|answers|onpolicy`, `deepguard train`,
`deepguard export`.

Heavy imports (torch, transformers) happen inside the command functions so `deepguard --help`
stays fast.
"""

from __future__ import annotations

import argparse
import json
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
    onpolicy = data_verbs.add_parser(
        "onpolicy",
        help="sample a model at temperature 1.0 on the training prompts and write its mistakes "
        "as preference pairs (for `train --objective preference --onpolicy-pairs`)",
    )
    onpolicy.add_argument("--model", required=True, help="the model to sample (HF directory)")
    onpolicy.add_argument(
        "--data", default="runs/data", help="directory from `deepguard data build`"
    )
    onpolicy.add_argument("--out", default="runs/onpolicy.jsonl", help="pairs JSONL to write")
    onpolicy.add_argument("--samples", type=int, default=4, help="sampled answers per prompt")
    onpolicy.add_argument(
        "--continuation-tries",
        type=int,
        default=2,
        help="continuations per mid-answer refusal (greedy, then sampled) to find one that helps",
    )
    onpolicy.add_argument("--max-new-tokens", type=int, default=64)
    onpolicy.add_argument(
        "--no-harmful", action="store_true", help="mine the harmless prompts only"
    )
    onpolicy.add_argument("--batch-size", type=int, default=16)
    onpolicy.add_argument("--seed", type=int, default=0)
    onpolicy.set_defaults(func=_data_onpolicy)

    answers = data_verbs.add_parser(
        "answers",
        help="distil a model's greedy answers to a prompt file into benign pairs, refusals "
        "dropped (for `train --pairs`)",
    )
    answers.add_argument(
        "--prompts", required=True, help="prompt file (.txt one a line, .jsonl or .csv)"
    )
    answers.add_argument("--out", required=True, help="pairs JSONL to write")
    answers.add_argument(
        "--model", default="default", help="model that answers (default: the packaged base)"
    )
    answers.add_argument("--max-new-tokens", type=int, default=96)
    answers.add_argument("--batch-size", type=int, default=16)
    answers.set_defaults(func=_data_answers)

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


def _data_answers(args: argparse.Namespace) -> int:
    from alignment.data.build import benign_pairs
    from alignment.data.files import read_prompts, write_jsonl
    from alignment.data.generate import generate_answers
    from alignment.models import load_model
    from proxy.watch.detector import RefusalDetector

    if args.max_new_tokens < 1 or args.batch_size < 1:
        raise SystemExit("--max-new-tokens and --batch-size must be >= 1")
    prompts = read_prompts(args.prompts)
    model, tokenizer = load_model(args.model)
    texts = generate_answers(
        model,
        tokenizer,
        prompts,
        args.model,
        args.max_new_tokens,
        args.batch_size,
        desc="answers",
    )
    rows = benign_pairs(prompts, texts, f"distilled:{args.model}", RefusalDetector.default())
    write_jsonl(args.out, rows)
    print(f"{len(rows)} of {len(prompts)} prompts answered without a refusal -> {args.out}")
    return 0


def _data_onpolicy(args: argparse.Namespace) -> int:
    from alignment.data.files import read_jsonl, write_jsonl
    from alignment.evaluate.generate import LocalGenerator
    from alignment.evaluate.relevance import PromptAwareRefusalClassifier
    from alignment.onpolicy import MiningConfig, mine_pairs
    from proxy.watch.detector import RefusalDetector

    if args.samples < 1 or args.continuation_tries < 0:
        raise SystemExit("--samples must be >= 1 and --continuation-tries >= 0")
    data = Path(args.data)
    harmless = read_jsonl(data / "benign.jsonl", ("prompt", "response"))
    triplets = [] if args.no_harmful else read_jsonl(data / "triplets.jsonl", ("prompt", "refusal"))
    config = MiningConfig(args.samples, args.continuation_tries, args.max_new_tokens, args.seed)
    generator = LocalGenerator.from_path(args.model, args.batch_size)
    detector = RefusalDetector.default()
    aware = PromptAwareRefusalClassifier(detector)
    rows, summary = mine_pairs(generator, harmless, triplets, config, detector, aware)
    out = Path(args.out)
    write_jsonl(out, rows)
    out.with_suffix(".summary.json").write_text(
        json.dumps({"model": args.model, **summary}, indent=2)
    )
    print(f"{len(rows)} on-policy pairs at {out}: {json.dumps(summary)}")
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
