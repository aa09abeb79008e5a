"""Where tests/deploy find the repository's deploy files and the external tools they run.

Tools come from PATH or from .tools/bin (scripts/install-tools.sh puts helm there). A missing
tool fails the test under CI (CI=true), where `make test` installs every tool first, and skips it
with the reason elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "deepguard"
RULES_FILE = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD_FILE = CHART / "files" / "grafana-dashboard.json"
RULE_TESTS_FILE = Path(__file__).resolve().parent / "prometheus-rules.test.yaml"
TOOLS = ROOT / ".tools"
INSTALL_HINT = "run scripts/install-tools.sh (make test does)"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere: a tool CI installs must never silently skip there."""
    message = f"{what} is not installed: {INSTALL_HINT}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def tool(name: str) -> str:
    """Absolute path of an executable on PATH or in .tools/bin."""
    local = TOOLS / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if not found:
        missing(name)
    return found


def compose_schema() -> Path:
    path = TOOLS / "schemas" / "compose-spec.json"
    if not path.is_file():
        missing("the compose-spec JSON schema (.tools/schemas/compose-spec.json)")
    return path


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool; on failure the assertion shows its whole output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def list_file_names(path: Path) -> set[str]:
    """First column of a checked-in list (deploy/vllm-metrics.txt, vllm-risky-flags.txt)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split()[0])
    return names


# A risky entry either is a flag (--x, matched as --x or --x=...) or an env name (NAME=).
def risky_hits(args: list[str], env_names: set[str]) -> list[str]:
    risky = list_file_names(DEPLOY / "vllm-risky-flags.txt")
    hits = []
    for entry in risky:
        if entry.endswith("="):
            if entry[:-1] in env_names:
                hits.append(entry[:-1])
        elif any(a == entry or a.startswith(entry + "=") for a in args):
            hits.append(entry)
    return sorted(hits)


METRIC_TOKEN = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
