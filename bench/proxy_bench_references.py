"""Reference proxies for bench/proxy_bench.py (`--references nginx relay`): what any extra hop costs
on this machine, in the same run as deepguard.

- `relay`: a bare ASGI app under the same server as deepguard (uvicorn, uvloop, httptools) that
  forwards the request and passes the upstream's body through byte for byte with deepguard's
  own upstream client (proxy.http1), parsing and checking nothing. What is left between it and
  deepguard is deepguard's work: the policy, the relay and watch, the framework.
- `nginx`: nginx as a streaming reverse proxy (no buffering, keep-alive to the upstream), the
  native-code floor of one loopback hop. Needs `nginx` on PATH (Debian: `apt-get install
  nginx-light`).

Run the relay alone: RELAY_UPSTREAM=http://127.0.0.1:8101 .venv/bin/python -m uvicorn \
    proxy_bench_references:relay --app-dir bench --loop uvloop --http httptools --port 8200
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from starlette.types import Receive, Scope, Send

from proxy import http1

_pool: http1.Pool | None = None


async def relay(scope: Scope, receive: Receive, send: Send) -> None:
    """The bare relay: POST bodies go to RELAY_UPSTREAM's same path, the answer comes back as is."""
    global _pool
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "POST":  # the readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if _pool is None:
        _pool = http1.Pool(os.environ["RELAY_UPSTREAM"], 5.0, 120.0, 1024)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    head = (
        f"POST {scope['path']} HTTP/1.1\r\nhost: {_pool.host_header}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    response = await _pool.request(head.encode("latin-1") + body)
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    while (piece := await response.read_body()) is not None:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    response.release_when_complete()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def relay_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "proxy_bench_references:relay",
        "--app-dir",
        str(Path(__file__).resolve().parent),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def nginx_path() -> str | None:
    """The nginx binary: on PATH, or where Debian puts it (sbin is not on every user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_command(port: int, upstream_url: str, workers: int, run_dir: Path) -> list[str]:
    """nginx in the foreground with its own config, pid and logs under `run_dir`."""
    nginx = nginx_path()
    if nginx is None:
        raise SystemExit(
            "--references nginx needs nginx on PATH (Debian: apt-get install nginx-light)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    upstream = upstream_url.removeprefix("http://").rstrip("/")
    (run_dir / "nginx.conf").write_text(
        f"""daemon off;
worker_processes {workers};
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    # The load generator keeps its connections open for the whole run (nginx closes a client
    # connection after 1000 requests by default, which it would count as a failure).
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {run_dir}/body;
    proxy_temp_path {run_dir}/proxy;
    upstream model_server {{
        server {upstream};
        keepalive 512;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /readyz {{ return 200 "ok"; }}
        location / {{
            proxy_pass http://model_server;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""
    )
    return [nginx, "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")]
