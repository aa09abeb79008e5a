"""The proxy stands alone: no module under proxy/ imports the alignment module, torch or
transformers, statically or when loaded. It is handed a model directory and a served name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

FORBIDDEN = ("alignment", "torch", "transformers", "peft", "accelerate", "vllm")
PROXY = ROOT / "proxy"


def proxy_modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in PROXY.rglob("*.py")
    )


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))
    return names


def test_no_proxy_source_names_a_forbidden_package():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in imported_names(path) if n.split(".")[0] in FORBIDDEN
        )
        for path in PROXY.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import torch.nn\nfrom alignment.models import load_model\n"
        "def f():\n    __import__('transformers')\n"
    )
    assert imported_names(sample) == {"torch.nn", "alignment.models", "transformers"}


def test_loading_every_proxy_module_loads_none_of_them():
    code = (
        "import importlib, sys\n"
        f"for name in {proxy_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
