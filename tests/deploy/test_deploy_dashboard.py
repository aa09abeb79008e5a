"""The provisioned Grafana dashboard: fresh, valid PromQL, the panels the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.deploy.test_deploy_metric_names import expressions
from tests.deploy.tooling import DASHBOARD_FILE, DEPLOY, run, tool


def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def test_checked_in_json_matches_the_generator():
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "grafana" / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_query_is_valid_promql(tmp_path):
    # promtool parses each expression as a recording rule; Grafana's variables get values first.
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": expr.replace("$model_name", ".*").replace("$__rate_interval", "1m"),
        }
        for i, (where, expr) in enumerate(sorted(expressions().items()))
        if where.startswith("panel")
    ]
    assert len(rules) >= 20
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run([tool("promtool"), "check", "rules", str(path)])


def test_model_name_variable_filters_every_panel():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    model = variables["model_name"]
    assert model["multi"] and model["includeAll"]
    assert "label_values(deepguard_requests_total, model_name)" in model["definition"]
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            assert 'model_name=~"$model_name"' in target["expr"], (panel["title"], target["expr"])


def test_panels_cover_guard_latency_upstream_and_engine():
    exprs_by_metric = "\n".join(
        t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])
    )
    for metric in (
        "deepguard_policy_rejections_total",
        "deepguard_refusal_outcomes_total",
        "deepguard_refusal_onset_tokens_bucket",
        "deepguard_time_to_first_token_seconds",
        "vllm:time_to_first_token_seconds",
        "deepguard_proxy_overhead_seconds",
        "deepguard_upstream_errors_total",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
    ):
        assert metric in exprs_by_metric, metric
    rejections = next(
        p for p in dashboard()["panels"] if p["title"] == "Prefill rejections by vector"
    )
    assert "by (vector)" in rejections["targets"][0]["expr"]
    onset = [p for p in dashboard()["panels"] if p["type"] == "heatmap"]
    assert onset and onset[0]["targets"][0]["format"] == "heatmap"


def test_panel_ids_unique_and_grid_within_24_columns():
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def test_compose_provisions_this_dashboard_and_datasource():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/deepguard.yaml").read_text()
    )
    folder = provider["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(
        m.startswith("./helm/deepguard/files/grafana-dashboard.json:" + folder + "/")
        for m in mounts
    ), mounts
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert datasource["datasources"][0]["isDefault"] is True
