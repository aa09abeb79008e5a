"""`deepguard engine`: serve a model on CPU with the vLLM protocol subset the proxy uses.

`register(subparsers)` adds the verb to the main `deepguard` program; `main(argv)` runs the same
options standalone (`python -m proxy.engine`). torch and transformers are imported only when the
command runs, so `deepguard --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

DTYPES = ("int8", "bfloat16", "float32")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="HF model directory or .gguf file (default: the packaged "
                             "SmolLM2-135M-Instruct GGUF)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8001,
                        help="port to bind; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--served-model-name", default=None,
                        help="model id reported to clients (default: the .gguf file stem or the "
                             "model directory name)")
    parser.add_argument("--dtype", choices=DTYPES, default="int8",
                        help="decoder weights: int8 (weight-only, fastest), bfloat16, or float32 "
                             "(identical to the model's own forward) (default: %(default)s)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "engine", help="serve a model on CPU (OpenAI/vLLM protocol)",
        description="Serve a transformers model on CPU with the OpenAI/vLLM HTTP protocol "
                    "subset the proxy uses. Allows prefilling: only the proxy forbids it.")
    add_engine_arguments(parser)
    parser.set_defaults(func=run_engine)


def run_engine(args: argparse.Namespace) -> int:
    from proxy.engine_location import ModelNotFoundError, resolve_model, served_name_for

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    try:
        model_path = resolve_model(args.model)
    except ModelNotFoundError as exc:
        print(f"deepguard engine: {exc}", file=sys.stderr)
        return 2
    name = args.served_model_name or served_name_for(model_path)
    print(f"deepguard engine: loading {model_path} ({args.dtype}) ...", file=sys.stderr,
          flush=True)
    import uvicorn

    from proxy.engine.server import create_engine_app

    try:
        app = create_engine_app(model_path, name, args.dtype)
    except ModelNotFoundError as exc:
        print(f"deepguard engine: {exc}", file=sys.stderr)
        return 2
    try:
        sock = socket.create_server((args.host, args.port), reuse_port=False)
    except OSError as exc:
        print(f"deepguard engine: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    # The socket already listens, so connections made after this line queue until served.
    print(f"deepguard engine: ready, serving {name} at http://{host}:{port}/v1", file=sys.stderr,
          flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.engine", description=__doc__)
    add_engine_arguments(parser)
    return run_engine(parser.parse_args(argv))
