"""Every Prometheus object of the proxy, in one place.

The label `model_name` equals vLLM's `--served-model-name`, so panels join with `vllm:*` series.
Names follow Prometheus conventions: base units (`_seconds`), counters end in `_total`.
The dashboards and alert rules in deploy/ use exactly these names (a test checks that).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Set by `deepguard serve --workers N` (N > 1) before prometheus-client is imported: every
# process then writes its values to files in this directory and /metrics merges them.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# vLLM's bucket edges for vllm:time_to_first_token_seconds, so both histograms line up.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
REQUEST_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    320.0,
    640.0,
)
# The proxy's own added time is expected in the tens of microseconds to a few milliseconds.
OVERHEAD_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
# Refusal onsets: every token from 0 to 10, then coarser up to a few hundred.
ONSET_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500)


class Metrics:
    """The proxy's metrics on their own registry (one per app, so tests can run several apps)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # What /metrics exposes: this registry, or, with several workers, the merge of every
        # worker's files (counters and histograms summed; the gauge as its multiprocess_mode says).
        self.exposition = self.registry
        multiproc_dir = os.environ.get(MULTIPROC_ENV)
        if multiproc_dir:
            self.exposition = CollectorRegistry()
            MultiProcessCollector(self.exposition, path=multiproc_dir)
        self.requests = Counter(
            "deepguard_requests",
            "Requests answered by the proxy.",
            ["model_name", "route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "deepguard_request_duration_seconds",
            "Time from request received to last byte sent.",
            ["model_name", "route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "deepguard_time_to_first_token_seconds",
            "Time from request received to the first content token sent to the client.",
            ["model_name"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "deepguard_upstream_errors",
            "Failed upstream calls, by kind.",
            ["model_name", "kind"],
            registry=r,
        )
        self.proxy_overhead = Histogram(
            "deepguard_proxy_overhead_seconds",
            "Time the proxy itself spent on a request (policy, watch, serialisation), "
            "excluding time waiting for the upstream.",
            ["model_name"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.upstream_ready = Gauge(
            "deepguard_upstream_ready",
            "1 when the upstream answered its last readiness probe.",
            ["model_name"],
            registry=r,
            # Several workers each probe the upstream: 1 only when every live worker's latest
            # probe succeeded (a dead worker's value is dropped), so the alert errs towards firing.
            multiprocess_mode="livemin",
        )
        self.upstream_restarts = Counter(
            "deepguard_upstream_restarts",
            "Times `deepguard serve` restarted its child vLLM after it died.",
            ["model_name"],
            registry=r,
        )
        # Prefill rejection (proxy/policy).
        self.policy_rejections = Counter(
            "deepguard_policy_rejections",
            "Requests rejected by the prefill policy, by vector.",
            ["model_name", "vector"],
            registry=r,
        )
        # Refusal-recovery watch (proxy/watch).
        self.refusal_outcomes = Counter(
            "deepguard_refusal_outcomes",
            "Answers (per choice) classified as refused, recovered or answered.",
            ["model_name", "outcome"],
            registry=r,
        )
        self.refusal_onset = Histogram(
            "deepguard_refusal_onset_tokens",
            "Token index where a refusal began.",
            ["model_name"],
            buckets=ONSET_BUCKETS,
            registry=r,
        )
        self.recovery_released = Histogram(
            "deepguard_recovery_released_tokens",
            "Tokens released to the client before the refusal onset, in recovered answers.",
            ["model_name"],
            buckets=ONSET_BUCKETS,
            registry=r,
        )
        self.recovery_suppressed = Counter(
            "deepguard_recovery_suppressed",
            "Recovered answers whose harmful start was held back and dropped.",
            ["model_name"],
            registry=r,
        )
