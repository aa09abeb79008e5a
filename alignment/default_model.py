"""`python -m alignment.default_model TRAINED_DIR --rank R`: rebuild the committed deep-default
adapter (alignment/adapter.py) from a model trained by the project's pipeline (`make
default-model`), then merge the served default once to check it loads (alignment/prepare.py).
With `--base MODEL_DIR --out ARTIFACT/01-NAME` it writes a layer instead: the delta of a model
trained on top of MODEL_DIR (the layers before it, merged)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignment.adapter import ADAPTER_FILE, ARTIFACT_DIR, DTYPES, PACKAGED_BASE, extract_adapter
from alignment.prepare import prepare_default_model


def main(argv: list[str] | None = None) -> int:
    """`python -m alignment.default_model TRAINED_DIR --rank R`: write the committed adapter from a
    model trained by the project's pipeline (see `make default-model`), then build the merged
    default once to check it loads."""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("trained", help="model directory written by `deepguard train`")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="int8+int4",
        help="how the factors are stored (int8+int4 keeps the rank-16 default under 4 MiB)",
    )
    parser.add_argument("--out", default=str(ARTIFACT_DIR))
    parser.add_argument(
        "--base",
        default="default",
        help="model directory the delta is taken against: a merged model that earlier layers "
        "make, for a recipe trained on top of it (default: the packaged base)",
    )
    parser.add_argument(
        "--command",
        default="make default-model",
        help="how the trained model was produced, recorded in the manifest",
    )
    args = parser.parse_args(argv)
    from alignment.models import load_model

    trained, _ = load_model(args.trained)
    base, _ = load_model(args.base)
    out = extract_adapter(
        trained,
        base,
        args.out,
        rank=args.rank,
        command=args.command,
        dtype=args.dtype,
        base_label=PACKAGED_BASE if args.base == "default" else "the layers before this one",
    )
    size = (out / ADAPTER_FILE).stat().st_size
    print(f"adapter written to {out} ({size / 2**20:.1f} MiB, rank {args.rank}, {args.dtype})")
    target = Path(args.out).resolve()
    if ARTIFACT_DIR.resolve() in (target, *target.parents):
        print(f"merged deep default (what vLLM serves): {prepare_default_model()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
