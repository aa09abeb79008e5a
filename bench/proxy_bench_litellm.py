"""LiteLLM, the comparison gateway: its own virtual environment and its start command.

LiteLLM pins dozens of packages that would fight the project's pins, so it lives in
`.bench/litellm-venv` (git-ignored), created on first use with the ordinary pip client.

Why 1.108.0: from 1.110 the `proxy` extra moved into a separate `litellm-proxy` distribution, and
the later 1.108.x releases pin `litellm-proxy-extras`/`litellm-enterprise` post-releases; neither
is on every package index (not on the one these machines use). 1.108.0 is the newest release
whose proxy extra installs from a plain PyPI mirror.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.108.0"
ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench" / "litellm-venv"
CONFIG = Path(__file__).resolve().parent / "litellm_config.yaml"
# bench/vllm_bench.py: the same settings, one deployment named as the served default on real vLLM.
VLLM_CONFIG = Path(__file__).resolve().parent / "litellm_vllm_config.yaml"


def executable() -> Path:
    return VENV / "bin" / "litellm"


def installed_version() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_installed() -> Path:
    """Create the venv and install the pinned LiteLLM proxy when it is missing (a few minutes)."""
    if installed_version() == LITELLM_VERSION and executable().exists():
        return executable()
    print(
        f"proxy_bench: installing litellm[proxy]=={LITELLM_VERSION} into {VENV.relative_to(ROOT)}"
        " (first use only) ...",
        file=sys.stderr,
        flush=True,
    )
    VENV.parent.mkdir(exist_ok=True)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"litellm[proxy]=={LITELLM_VERSION}",
        ],
        check=True,
    )
    return executable()


def command(port: int, config: Path = CONFIG) -> list[str]:
    return [
        str(executable()),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def environment(
    upstream_url: str, client_key: str, upstream_key: str = "sk-bench-upstream"
) -> dict[str, str]:
    return {
        # LiteLLM refuses to start without a master key; clients send it like deepguard's key.
        "LITELLM_MASTER_KEY": client_key,
        "BENCH_UPSTREAM_BASE": upstream_url + "/v1",
        "BENCH_UPSTREAM_KEY": upstream_key,
        # Offline machine: use the bundled model-cost map instead of fetching it at start-up.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
    }
