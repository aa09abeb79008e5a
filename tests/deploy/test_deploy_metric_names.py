"""Every metric name the dashboard and the rules use exists where it should.

deepguard_* names must be in the proxy's real /metrics output (proxy/metrics.py rendered by
prometheus-client); vllm:* names must be in deploy/vllm-metrics.txt, which in turn must match what
the installed vLLM (.vllm-venv, the CPU build) defines; deepguard:* names must be recorded by the
rule file. A rename anywhere then fails here instead of silently emptying a panel.
"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import generate_latest

from proxy.metrics import Metrics
from tests.deploy.tooling import (
    DASHBOARD_FILE,
    DEPLOY,
    METRIC_TOKEN,
    ROOT,
    RULES_FILE,
    list_file_names,
    missing,
)

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMETHEUS_BUILTINS = {"up"}
OWN_PREFIXES = ("deepguard_", "deepguard:", "vllm:")


def proxy_metrics_output() -> str:
    """The proxy's /metrics text with one child per metric, so every sample name appears."""
    metrics = Metrics()
    for collector in vars(metrics).values():
        labelnames = getattr(collector, "_labelnames", None)
        if labelnames is None:
            continue
        child = collector.labels(*["x"] * len(labelnames)) if labelnames else collector
        for action in ("inc", "observe", "set"):
            if hasattr(child, action):
                getattr(child, action)(1)
                break
    return generate_latest(metrics.registry).decode()


def sample_names(exposition: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the rule file, keyed by where it is."""
    found = {}
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found[f"variable {var['name']}"] = var["definition"]
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            found[f"rule {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return found


def used_names(expr: str) -> set[str]:
    # Drop label matchers and strings first so label values are not read as names.
    bare = re.sub(r'\{[^}]*\}|"[^"]*"', " ", expr)
    return {
        t
        for t in METRIC_TOKEN.findall(bare)
        if t.startswith(OWN_PREFIXES) or t in PROMETHEUS_BUILTINS
    }


def exists(name: str, proxy_names: set[str], vllm_names: set[str], recorded: set[str]) -> bool:
    if name in PROMETHEUS_BUILTINS or name in recorded:
        return True
    if name.startswith("vllm:"):
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            base = base.removesuffix(suffix)
        return name in vllm_names or base in vllm_names
    return name in proxy_names


def installed_vllm_metrics() -> dict[str, str]:
    """`vllm:*` names the vLLM in .vllm-venv registers, with their prometheus-client type, read
    from its sources (importing vLLM takes torch and many seconds)."""
    sources = sorted(ROOT.glob(".vllm-venv/lib/python3*/site-packages/vllm/v1/metrics/*.py"))
    if not sources:
        missing("vLLM's CPU build in .vllm-venv (make install)")
    defined = {}
    for source in sources:
        text = source.read_text()
        # `self._gauge_cls(name="vllm:...")`, `self._counter_cls(...)`, `self._histogram_cls(...)`
        for kind, name in re.findall(
            r"_(gauge|counter|histogram)_cls\(\s*name=\"(vllm:[a-z0-9_:]+)\"", text
        ):
            defined[name] = kind
    return defined


def test_proxy_exposition_has_the_documented_names():
    names = sample_names(proxy_metrics_output())
    assert "deepguard_policy_rejections_total" in names
    assert "deepguard_proxy_overhead_seconds_bucket" in names


def test_every_metric_used_by_dashboard_and_rules_exists():
    proxy_names = sample_names(proxy_metrics_output())
    vllm_names = list_file_names(DEPLOY / "vllm-metrics.txt")
    recorded = {
        rule["record"]
        for g in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in g["rules"]
        if "record" in rule
    }
    unknown = {}
    for where, expr in expressions().items():
        for name in used_names(expr):
            if not exists(name, proxy_names, vllm_names, recorded):
                unknown.setdefault(name, []).append(where)
    assert not unknown, f"metric names that nothing exposes: {unknown}"


def test_the_checker_rejects_a_renamed_metric():
    # Guard against a checker that accepts everything.
    proxy_names = sample_names(proxy_metrics_output())
    # The retired local engine's names, and vLLM's pre-0.11 inter-token name, must not pass.
    for bogus in (
        "deepguard_policy_rejection_total",
        "vllm:time_to_first_token",
        "deepguard_engine_time_to_first_token_seconds_bucket",
        "vllm:time_per_output_token_seconds_bucket",
        "deepguard:not_recorded",
    ):
        assert not exists(
            bogus, proxy_names, list_file_names(DEPLOY / "vllm-metrics.txt"), set()
        ), bogus


def test_dashboard_shows_proxy_ttft_beside_vllm_ttft_in_one_panel():
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    ttft = [
        p
        for p in dashboard["panels"]
        if any("deepguard_time_to_first_token_seconds" in t["expr"] for t in p.get("targets", []))
    ]
    assert ttft and any("vllm:time_to_first_token_seconds" in t["expr"] for t in ttft[0]["targets"])


def test_vllm_metric_list_matches_the_installed_vllm():
    defined = installed_vllm_metrics()
    assert "vllm:time_to_first_token_seconds" in defined, "the source pattern no longer matches"
    listed = {}
    for line in (DEPLOY / "vllm-metrics.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind = line.split()[:2]
            listed[name] = kind
    for name, kind in listed.items():
        # prometheus-client exposes a counter registered as `x` under `x_total`.
        base = name.removesuffix("_total") if kind == "counter" else name
        assert defined.get(base) == kind, (
            f"{name} ({kind}): the installed vLLM defines {defined.get(base)}"
        )


def test_dashboard_shows_vllm_inter_token_latency_beside_the_proxys_ttft_and_overhead():
    panels = json.loads(DASHBOARD_FILE.read_text())["panels"]

    def panel_using(metric: str) -> dict:
        found = [p for p in panels if any(metric in t["expr"] for t in p.get("targets", []))]
        assert found, metric
        return found[0]

    ttft = panel_using("deepguard_time_to_first_token_seconds")
    itl = panel_using("vllm:inter_token_latency_seconds")
    overhead = panel_using("deepguard_proxy_overhead_seconds")
    # One row of the grid: same y, side by side.
    assert ttft["gridPos"]["y"] == itl["gridPos"]["y"] == overhead["gridPos"]["y"]
    assert len({ttft["id"], itl["id"], overhead["id"]}) == 3
    restarts = panel_using("deepguard_upstream_restarts_total")
    assert "increase(deepguard_upstream_restarts_total" in restarts["targets"][0]["expr"]


def test_nothing_in_deploy_uses_the_retired_engine():
    for path in [*DEPLOY.rglob("*"), ROOT / "docs" / "deploy.md"]:
        if path.is_file() and path.suffix in (
            ".yaml",
            ".yml",
            ".json",
            ".py",
            ".txt",
            ".md",
            ".tpl",
            ".sh",
            ".Dockerfile",
            ".dockerignore",
            "",
        ):
            text = path.read_text(errors="replace")
            assert "deepguard_engine_" not in text, path
            for retired in ("deepguard engine", "local engine", "engine.Dockerfile"):
                assert retired not in text, (path, retired)
