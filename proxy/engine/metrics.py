"""The engine's Prometheus metrics, on their own registry (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proxy.metrics import TTFT_BUCKETS

OUTCOMES = ("finished", "cancelled", "error")


class EngineMetrics:
    def __init__(self, model_name: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = {"model_name": model_name}
        self._requests = Counter(
            "deepguard_engine_requests", "Chat requests the engine ended, by outcome.",
            ["model_name", "outcome"], registry=r)
        for outcome in OUTCOMES:  # export zeros, so rate() works from the first request
            self._requests.labels(model_name=model_name, outcome=outcome)
        self.generated_tokens = Counter(
            "deepguard_engine_generated_tokens", "Tokens generated (counted as each is sampled).",
            ["model_name"], registry=r).labels(**labels)
        self.running = Gauge(
            "deepguard_engine_running_requests", "Requests generating now.",
            ["model_name"], registry=r).labels(**labels)
        self.waiting = Gauge(
            "deepguard_engine_waiting_requests", "Requests queued behind the running one.",
            ["model_name"], registry=r).labels(**labels)
        self.ttft = Histogram(
            "deepguard_engine_time_to_first_token_seconds",
            "Time from request received to its first generated token.",
            ["model_name"], buckets=TTFT_BUCKETS, registry=r).labels(**labels)
        self._model_name = model_name

    def request_ended(self, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self._requests.labels(model_name=self._model_name, outcome=outcome).inc()
