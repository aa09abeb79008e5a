"""The `deepguard` command: serve, engine, data, train, export, eval.

Each area registers its own verbs; heavy imports (torch, transformers) happen inside the verbs,
so `deepguard --help` and `deepguard serve` stay light.
"""

from __future__ import annotations

import argparse
import sys

from proxy import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepguard",
        description="Serve deeply safety-aligned language models behind a prefill-proof, "
                    "recovery-watching OpenAI-compatible proxy, and build such models.")
    parser.add_argument("--version", action="version", version=f"deepguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from proxy import serve_cli
    serve_cli.register(sub)
    for module in ("proxy.engine.cli", "alignment.cli", "alignment.evaluate.cli"):
        try:
            registrar = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            # The light proxy install lacks the engine/training extras (torch, transformers):
            # those verbs are then simply absent. A missing module of our own is a bug.
            missing = exc.name or ""
            if missing.split(".")[0] not in ("proxy", "alignment") or module.startswith(missing):
                continue
            raise
        registrar.register(sub)
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
