"""One CI-sized run of every `deepguard eval` verb on the real default model.

The real, deeply aligned default (packaged SmolLM2 + the committed adapter, as `make install` prepares it)
is evaluated through the installed `deepguard` command, with sizes that keep the whole module to a
couple of CPU-minutes: these runs check that each verb works end to end on the model we serve and
that its result has the documented shape; the numbers themselves come from the documented full
runs (docs/evaluation.md).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from alignment.evaluate.prefill import asr_by_k
from tests.support.processes import ROOT, SHARED, deepguard_cmd

# Each test runs whole `deepguard eval` jobs on the real model in subprocesses: a few CPU-minutes,
# many more on a loaded machine; the ceiling only stops a hang.
pytestmark = pytest.mark.timeout(1800)

XSTEST = SHARED / "data" / "xstest" / "xstest_safe_prompts.csv"
TASKS = SHARED / "data" / "self-instruct" / "user_oriented_instructions.jsonl"
SMALL = ["--limit", "2", "--max-new-tokens", "12", "--batch-size", "2"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        deepguard_cmd() + ["eval", *args], cwd=ROOT, capture_output=True, text=True, timeout=1700
    )
    if check and proc.returncode != 0:
        pytest.fail(f"deepguard eval {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def deep_model() -> str:
    from alignment.prepare import prepare_default_model

    return str(prepare_default_model())


@pytest.fixture(scope="module")
def cases(tmp_path_factory, deep_model) -> Path:
    """Harmful prefixes written by the shipped model for two held-out HarmBench prompts."""
    out = tmp_path_factory.mktemp("eval") / "prefill-shipped.json"
    run("prefill", "--label", "shipped", *SMALL, "--ks", "0", "--out", str(out))
    found = list(out.parent.glob("*harmful-cases.jsonl"))
    assert found, f"eval prefill wrote no harmful cases next to {out}"
    return found[0]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_prefill_and_rank_modes(deep_model, cases, tmp_path):
    for mode in ("prefill", "rank"):
        out = tmp_path / f"{mode}.json"
        run(
            "prefill",
            "--model",
            deep_model,
            "--label",
            "deep",
            *SMALL,
            "--cases",
            str(cases),
            "--ks",
            "0,5",
            "--mode",
            mode,
            "--out",
            str(out),
        )
        result = load(out)
        assert result["kind"] == "prefill" and result["model"] == "deep"
        # One ASR per requested k, each a percentage, in the mode asked for.
        assert result["mode"] == mode and set(result["k"]) == {"0", "5"}
        assert all(0 <= asr <= 100 for asr in asr_by_k(result).values())


def test_kl_and_recovery(deep_model, cases, tmp_path):
    run(
        "kl",
        "--model",
        deep_model,
        "--label",
        "deep",
        "--reference",
        "default",
        "--cases",
        str(cases),
        "--positions",
        "8",
        "--out",
        str(tmp_path / "kl.json"),
    )
    kl = load(tmp_path / "kl.json")
    assert kl["kind"] == "kl" and len(kl["kl"]) == len(kl["positions"]) > 0
    assert all(v >= 0 for v in kl["kl"])
    assert list(tmp_path.glob("*.png")), "eval kl wrote no plot"
    run(
        "recovery",
        "--model",
        deep_model,
        "--label",
        "deep",
        "--cases",
        str(cases),
        "--ks",
        "5",
        "--max-new-tokens",
        "12",
        "--out",
        str(tmp_path / "recovery.json"),
    )
    assert load(tmp_path / "recovery.json")["kind"] == "recovery"


def test_overrefusal_utility_report_and_gate(deep_model, cases, tmp_path):
    run(
        "overrefusal",
        "--model",
        deep_model,
        "--label",
        "deep",
        "--prompts",
        str(XSTEST),
        "--limit",
        "3",
        "--max-new-tokens",
        "12",
        "--out",
        str(tmp_path / "over.json"),
    )
    over = load(tmp_path / "over.json")
    assert over["kind"] == "overrefusal" and 0.0 <= over["refusal_rate"] <= 100.0
    run(
        "utility",
        "--model",
        deep_model,
        "--label",
        "deep",
        "--tasks",
        str(TASKS),
        "--limit",
        "3",
        "--max-new-tokens",
        "12",
        "--out",
        str(tmp_path / "utility.json"),
    )
    assert load(tmp_path / "utility.json")["kind"] == "utility"
    run("report", str(tmp_path), "--out-dir", str(tmp_path / "report"), "--title", "CI")
    assert (tmp_path / "report" / "report.md").is_file()
    same = run(
        "gate",
        "--candidate",
        deep_model,
        "--baseline",
        deep_model,
        "--cases",
        str(cases),
        "--limit",
        "2",
        "--ks",
        "0",
        "--safe-prompts",
        str(XSTEST),
        "--safe-limit",
        "2",
        "--tasks",
        str(TASKS),
        "--task-limit",
        "2",
        "--max-new-tokens",
        "8",
        "--canary-seeds",
        "0",
        "--out",
        str(tmp_path / "gate.json"),
        check=False,
    )
    assert same.returncode == 0, same.stderr[-2000:]
    canaries = load(tmp_path / "gate.json")["canaries"]
    assert canaries["candidate"]["runs"] == canaries["baseline"]["runs"]  # one model, same answers


def test_finetune_attack(deep_model, cases, tmp_path):
    run(
        "finetune-attack",
        "--model",
        deep_model,
        "--label",
        "deep",
        "--cases",
        str(cases),
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--examples",
        "2",
        "--epochs",
        "1",
        "--objectives",
        "sft,constrained",
        "--tasks",
        str(TASKS),
        "--task-limit",
        "2",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "attack.json"),
    )
    result = load(tmp_path / "attack.json")
    assert result["kind"] == "finetune-attack"
    text = json.dumps(result)
    assert "sft" in text and "constrained" in text
