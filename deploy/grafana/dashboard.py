"""Builds the provisioned Grafana dashboard (deploy/helm/deepguard/files/grafana-dashboard.json).

The JSON is generated so that panels stay uniform and the queries are readable Python; the
output is checked in (Grafana, compose and the Helm chart read the JSON, not this file) and a
test fails if the two drift. Regenerate with:

    python deploy/grafana/dashboard.py            # writes the JSON
    python deploy/grafana/dashboard.py --check    # exit 1 if the checked-in JSON is stale

Standard library only, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTPUT = (
    Path(__file__).resolve().parents[1] / "helm" / "deepguard" / "files" / "grafana-dashboard.json"
)
DASHBOARD_UID = "deepguard-overview"
# The proxy's own-time budget; the DeepguardProxyOverheadHigh alert uses the same number.
OVERHEAD_BUDGET_SECONDS = 0.010

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = '{model_name=~"$model_name"}'  # every query is filtered by the model_name variable
RATE = "$__rate_interval"


def quantile(q: float, bucket_metric: str, by: str = "model_name") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket_metric}_bucket{SEL}[{RATE}])))"


def target(expr: str, legend: str, ref: str, fmt: str = "time_series") -> dict:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "format": fmt,
        "range": True,
    }


class Layout:
    """Places panels left to right in rows of 24 grid units and hands out panel ids."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = self.y = 0
        self.row_height = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": self._id(),
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict, w: int = 8, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel.update(
            id=self._id(), datasource=DATASOURCE, gridPos={"h": h, "w": w, "x": self.x, "y": self.y}
        )
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = self.row_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def timeseries(
    title: str,
    description: str,
    targets: list[dict],
    unit: str = "short",
    stacked: bool = False,
    thresholds: list[dict] | None = None,
) -> dict:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 20 if stacked else 0,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        "showPoints": "never",
        "spanNulls": False,
    }
    defaults: dict = {"unit": unit, "custom": custom}
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def heatmap(title: str, description: str, expr: str) -> dict:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "targets": [target(expr, "{{le}}", "A", fmt="heatmap")],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": "short"},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges"},
            "tooltip": {"show": True, "yHistogram": True},
        },
    }


def stat(title: str, description: str, expr: str, legend: str) -> dict:
    steps = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "targets": [target(expr, legend, "A")],
        "fieldConfig": {
            "defaults": {
                "unit": "short",
                "min": 0,
                "max": 1,
                "thresholds": {"mode": "absolute", "steps": steps},
                "mappings": [
                    {"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "READY"}}}
                ],
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    }


def guard_panels(layout: Layout) -> None:
    layout.row("Guard: prefill rejections and refusal watch")
    layout.add(
        timeseries(
            "Prefill rejections by vector",
            "Requests the prefill policy rejected (HTTP 400), per attack vector. A sudden rise is "
            "an attack campaign (alert DeepguardRejectionRateSpike).",
            [
                target(
                    f"sum by (vector) (rate(deepguard_policy_rejections_total{SEL}[{RATE}]))",
                    "{{vector}}",
                    "A",
                )
            ],
            unit="reqps",
            stacked=True,
        )
    )
    layout.add(
        timeseries(
            "Rejected share of requests",
            "Rejected requests divided by all requests, per model version.",
            [
                target(
                    f"sum by (model_name) (rate(deepguard_policy_rejections_total{SEL}[{RATE}])) / "
                    f"sum by (model_name) (rate(deepguard_requests_total{SEL}[{RATE}]))",
                    "{{model_name}}",
                    "A",
                )
            ],
            unit="percentunit",
        )
    )
    layout.add(
        timeseries(
            "Refusal outcomes per model version",
            "Watched answers per outcome: refused (refusal from the start), recovered (a harmful "
            "start that turned into a refusal), answered (no refusal).",
            [
                target(
                    f"sum by (model_name, outcome) (rate(deepguard_refusal_outcomes_total{SEL}[{RATE}]))",
                    "{{model_name}} {{outcome}}",
                    "A",
                )
            ],
            unit="ops",
            stacked=True,
        )
    )
    layout.add(
        timeseries(
            "Recovered share per model version",
            "Share of watched answers that recovered. A rise after a rollout means the new "
            "model's alignment is shallower (alert DeepguardRecoveredShareRise).",
            [
                target(
                    f'sum by (model_name) (rate(deepguard_refusal_outcomes_total{{model_name=~"$model_name",outcome="recovered"}}[{RATE}])) / '
                    f"sum by (model_name) (rate(deepguard_refusal_outcomes_total{SEL}[{RATE}]))",
                    "{{model_name}}",
                    "A",
                )
            ],
            unit="percentunit",
        )
    )
    layout.add(
        heatmap(
            "Refusal onset (token index) distribution",
            "Token index at which refusals began. Deeply aligned models refuse within the first "
            "few tokens; mass moving right means refusals start later.",
            f"sum by (le) (increase(deepguard_refusal_onset_tokens_bucket{SEL}[{RATE}]))",
        )
    )
    layout.add(
        timeseries(
            "Refusal onset p50 / p90 per model version",
            "Median and 90th percentile of the refusal onset token, to compare versions.",
            [
                target(quantile(0.5, "deepguard_refusal_onset_tokens"), "p50 {{model_name}}", "A"),
                target(quantile(0.9, "deepguard_refusal_onset_tokens"), "p90 {{model_name}}", "B"),
            ],
        )
    )
    layout.add(
        timeseries(
            "Recovery: tokens released before the refusal",
            "In recovered answers, how many tokens of the harmful start reached the client "
            "(p90), and how many recovered answers had their start held back and dropped.",
            [
                target(
                    quantile(0.9, "deepguard_recovery_released_tokens"),
                    "released p90 {{model_name}}",
                    "A",
                ),
                target(
                    f"sum by (model_name) (rate(deepguard_recovery_suppressed_total{SEL}[{RATE}]))",
                    "suppressed/s {{model_name}}",
                    "B",
                ),
            ],
        ),
        w=24,
    )


def latency_panels(layout: Layout) -> None:
    layout.row("Latency: proxy beside vLLM")
    layout.add(
        timeseries(
            "Time to first token: proxy vs vLLM",
            "Proxy TTFT (what clients see) beside vLLM's own vllm:time_to_first_token_seconds, "
            "joined on model_name. The gap is the guard's hold-back window plus its overhead.",
            [
                target(
                    quantile(0.5, "deepguard_time_to_first_token_seconds"),
                    "proxy p50 {{model_name}}",
                    "A",
                ),
                target(
                    quantile(0.99, "deepguard_time_to_first_token_seconds"),
                    "proxy p99 {{model_name}}",
                    "B",
                ),
                target(
                    quantile(0.5, "vllm:time_to_first_token_seconds"),
                    "vLLM p50 {{model_name}}",
                    "C",
                ),
                target(
                    quantile(0.99, "vllm:time_to_first_token_seconds"),
                    "vLLM p99 {{model_name}}",
                    "D",
                ),
            ],
            unit="s",
        )
    )
    layout.add(
        timeseries(
            "vLLM inter-token latency",
            "Time between two generated tokens inside vLLM (vllm:inter_token_latency_seconds): the "
            "decode speed the proxy relays token by token. On the CPU build it grows with the number "
            "of requests decoded at once.",
            [
                target(
                    quantile(0.5, "vllm:inter_token_latency_seconds"), "p50 {{model_name}}", "A"
                ),
                target(
                    quantile(0.99, "vllm:inter_token_latency_seconds"), "p99 {{model_name}}", "B"
                ),
            ],
            unit="s",
        )
    )
    budget = [{"color": "green", "value": None}, {"color": "red", "value": OVERHEAD_BUDGET_SECONDS}]
    layout.add(
        timeseries(
            "Proxy overhead (own time per request)",
            "Time the proxy itself spent per request (policy, watch, serialisation), excluding "
            "the upstream. Dashed line: the 10 ms p99 budget (alert DeepguardProxyOverheadHigh).",
            [
                target(
                    quantile(0.5, "deepguard_proxy_overhead_seconds"), "p50 {{model_name}}", "A"
                ),
                target(
                    quantile(0.99, "deepguard_proxy_overhead_seconds"), "p99 {{model_name}}", "B"
                ),
            ],
            unit="s",
            thresholds=budget,
        )
    )
    layout.add(
        timeseries(
            "Request duration p99: proxy vs vLLM end to end",
            "Full request time at the proxy per route, beside vLLM's vllm:e2e_request_latency_seconds.",
            [
                target(
                    quantile(0.99, "deepguard_request_duration_seconds", by="model_name, route"),
                    "proxy {{route}} {{model_name}}",
                    "A",
                ),
                target(
                    quantile(0.99, "vllm:e2e_request_latency_seconds"), "vLLM {{model_name}}", "B"
                ),
            ],
            unit="s",
        ),
        w=24,
    )


def upstream_panels(layout: Layout) -> None:
    layout.row("Traffic and upstream")
    layout.add(
        timeseries(
            "Requests by status",
            "Requests answered by the proxy per HTTP status (400 includes policy rejections).",
            [
                target(
                    f"sum by (status) (rate(deepguard_requests_total{SEL}[{RATE}]))",
                    "{{status}}",
                    "A",
                )
            ],
            unit="reqps",
            stacked=True,
        ),
        w=6,
    )
    layout.add(
        timeseries(
            "Upstream errors by kind",
            "Failed calls from the proxy to vLLM (alert DeepguardUpstreamErrorRate).",
            [
                target(
                    f"sum by (kind) (rate(deepguard_upstream_errors_total{SEL}[{RATE}]))",
                    "{{kind}}",
                    "A",
                )
            ],
            unit="reqps",
            stacked=True,
        ),
        w=6,
    )
    layout.add(
        stat(
            "Upstream ready",
            "The proxy's last readiness probe of the upstream, per model (alert DeepguardUpstreamDown).",
            f"min by (model_name) (deepguard_upstream_ready{SEL})",
            "{{model_name}}",
        ),
        w=6,
    )
    layout.add(
        timeseries(
            "vLLM restarts by deepguard serve",
            "Times `deepguard serve` restarted the vLLM child it supervises after it died (alert "
            "DeepguardUpstreamRestarted). Empty where the proxy fronts a vLLM it does not run "
            "(--upstream: compose, Kubernetes), whose restarts the container runtime counts.",
            [
                target(
                    f"sum by (model_name) (increase(deepguard_upstream_restarts_total{SEL}[{RATE}]))",
                    "{{model_name}}",
                    "A",
                )
            ],
            unit="short",
        ),
        w=6,
    )


def vllm_panels(layout: Layout) -> None:
    layout.row("vLLM: scheduler, KV cache, throughput (GPU image or CPU build)")
    layout.add(
        timeseries(
            "vLLM queue: running and waiting requests",
            "vLLM's scheduler queue (vllm:num_requests_running / _waiting). A growing waiting queue "
            "means more replicas or tensor parallelism are needed (on the CPU build: more cores).",
            [
                target(
                    f"sum by (model_name) (vllm:num_requests_running{SEL})",
                    "running {{model_name}}",
                    "A",
                ),
                target(
                    f"sum by (model_name) (vllm:num_requests_waiting{SEL})",
                    "waiting {{model_name}}",
                    "B",
                ),
            ],
        )
    )
    layout.add(
        timeseries(
            "vLLM KV-cache usage",
            "Fraction of the KV cache in use (vllm:kv_cache_usage_perc, 1 = full). Near 1, vLLM "
            "preempts requests. The CPU build's cache is VLLM_CPU_KVCACHE_SPACE GiB.",
            [
                target(
                    f"max by (model_name) (vllm:kv_cache_usage_perc{SEL})", "{{model_name}}", "A"
                ),
                target(
                    f"sum by (model_name) (rate(vllm:num_preemptions_total{SEL}[{RATE}]))",
                    "preemptions/s {{model_name}}",
                    "B",
                ),
            ],
            unit="percentunit",
        )
    )
    layout.add(
        timeseries(
            "Generated tokens per second",
            "Decode throughput of vLLM (vllm:generation_tokens_total).",
            [
                target(
                    f"sum by (model_name) (rate(vllm:generation_tokens_total{SEL}[{RATE}]))",
                    "{{model_name}}",
                    "A",
                )
            ],
            unit="short",
        )
    )


def build_dashboard() -> dict:
    layout = Layout()
    guard_panels(layout)
    latency_panels(layout)
    upstream_panels(layout)
    vllm_panels(layout)
    variables = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        {
            "name": "model_name",
            "label": "Model version",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(deepguard_requests_total, model_name)", "refId": "A"},
            "definition": "label_values(deepguard_requests_total, model_name)",
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {},
            "refresh": 2,
            "sort": 1,
            "hide": 0,
        },
    ]
    return {
        "uid": DASHBOARD_UID,
        "title": "deepguard: guard proxy and vLLM",
        "description": "Prefill rejections, refusal recovery per model version, proxy latency "
        "beside vLLM, upstream health. Panels and alerts: docs/deploy.md.",
        "tags": ["deepguard", "vllm", "llm-safety"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": layout.panels,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON on disk is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT.name} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr
            )
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(build_dashboard()['panels'])} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
