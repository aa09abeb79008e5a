"""Every metric name the dashboard and the rules use exists where it should.

deepguard_* names must be in the proxy's real /metrics output (proxy/metrics.py rendered by
prometheus-client) or, for deepguard_engine_*, in the local engine's sources; vllm:* names must
be in deploy/vllm-metrics.txt (vLLM's documented set); deepguard:* names must be recorded by the
rule file. A rename anywhere then fails here instead of silently emptying a panel.
"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import generate_latest

from proxy.metrics import Metrics
from tests.deploy.tooling import (DASHBOARD_FILE, DEPLOY, METRIC_TOKEN, ROOT, RULES_FILE,
                                  list_file_names)

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
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
            if line and not line.startswith("#")}


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
    return {t for t in METRIC_TOKEN.findall(bare)
            if t.startswith(OWN_PREFIXES) or t in PROMETHEUS_BUILTINS}


def engine_base_names() -> set[str]:
    """deepguard_engine_* names written in the local engine's sources."""
    text = "\n".join(p.read_text() for p in (ROOT / "proxy" / "engine").rglob("*.py"))
    return set(re.findall(r"deepguard_engine_[a-z0-9_]+", text))


def exists(name: str, proxy_names: set[str], engine_names: set[str], vllm_names: set[str],
           recorded: set[str]) -> bool:
    if name in PROMETHEUS_BUILTINS or name in recorded:
        return True
    if name.startswith("vllm:"):
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            base = base.removesuffix(suffix)
        return name in vllm_names or base in vllm_names
    if name.startswith("deepguard_engine_"):
        # prometheus-client adds _total to counters and _bucket/_sum/_count to histograms.
        candidates = {name, name.removesuffix("_total")}
        candidates |= {name.removesuffix(s) for s in HISTOGRAM_SUFFIXES}
        return bool(candidates & engine_names)
    return name in proxy_names


def test_proxy_exposition_has_the_documented_names():
    names = sample_names(proxy_metrics_output())
    assert "deepguard_policy_rejections_total" in names
    assert "deepguard_proxy_overhead_seconds_bucket" in names


def test_every_metric_used_by_dashboard_and_rules_exists():
    proxy_names = sample_names(proxy_metrics_output())
    vllm_names = list_file_names(DEPLOY / "vllm-metrics.txt")
    engine_names = engine_base_names()
    recorded = {rule["record"] for g in yaml.safe_load(RULES_FILE.read_text())["groups"]
                for rule in g["rules"] if "record" in rule}
    unknown = {}
    for where, expr in expressions().items():
        for name in used_names(expr):
            if not exists(name, proxy_names, engine_names, vllm_names, recorded):
                unknown.setdefault(name, []).append(where)
    assert not unknown, f"metric names that nothing exposes: {unknown}"


def test_the_checker_rejects_a_renamed_metric():
    # Guard against a checker that accepts everything.
    proxy_names = sample_names(proxy_metrics_output())
    for bogus in ("deepguard_policy_rejection_total", "vllm:time_to_first_token",
                  "deepguard_engine_no_such_metric", "deepguard:not_recorded"):
        assert not exists(bogus, proxy_names, engine_base_names(),
                          list_file_names(DEPLOY / "vllm-metrics.txt"), set()), bogus


def test_dashboard_shows_proxy_ttft_beside_vllm_ttft_in_one_panel():
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    ttft = [p for p in dashboard["panels"]
            if any("deepguard_time_to_first_token_seconds" in t["expr"] for t in p.get("targets", []))]
    assert ttft and any("vllm:time_to_first_token_seconds" in t["expr"] for t in ttft[0]["targets"])
