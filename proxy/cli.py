"""The `deepguard` command: serve, model, data, train, export, eval.

Each area registers its own verbs; heavy imports (torch, transformers) happen inside the verbs,
so `deepguard --help` and `deepguard serve` stay light.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

from proxy import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepguard",
        description="Serve deeply safety-aligned language models behind a prefill-proof, "
        "recovery-watching OpenAI-compatible proxy, and build such models.",
    )
    parser.add_argument("--version", action="version", version=f"deepguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each area registers its verbs through the `deepguard.commands` entry points (pyproject.toml),
    # so this package names no other: the proxy never imports the alignment module.
    for entry in sorted(
        importlib.metadata.entry_points(group="deepguard.commands"), key=lambda e: e.name
    ):
        try:
            registrar = entry.load()
        except ModuleNotFoundError as exc:
            # The light proxy install lacks the training extra (torch, transformers): those verbs
            # are then simply absent. A missing module of our own is a bug.
            if (exc.name or "").split(".")[0] in ("proxy", "alignment"):
                raise
            continue
        registrar(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
