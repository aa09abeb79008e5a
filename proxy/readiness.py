"""Is the upstream reachable and serving our model? Used by GET /readyz and by a background
probe, so `deepguard_upstream_ready` (and the UpstreamDown alert) stays true to the upstream even
where nothing polls /readyz."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from proxy.upstream_errors import UpstreamError

log = logging.getLogger("deepguard.readiness")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    model: str | None
    reason: str | None = None


async def probe(state) -> Readiness:
    """Ask the upstream for its models once and record the answer in the gauge."""
    gauge = state.metrics.upstream_ready
    try:
        models = await state.upstream.models()
        name = await state.served_model.resolve()
    except UpstreamError as exc:
        gauge.labels(state.served_model.name or "unknown").set(0)
        # /readyz is unauthenticated: name the failure, never repeat the upstream's own text.
        log.debug("readiness probe failed: %s", exc.message)
        return Readiness(False, state.served_model.name, f"upstream not ready ({exc.code})")
    if not any(m["id"] == name for m in models):
        gauge.labels(name).set(0)
        return Readiness(False, name, f"the upstream does not serve '{name}'")
    gauge.labels(name).set(1)
    return Readiness(True, name)


async def probe_forever(state, interval_s: float) -> None:
    was_ready: bool | None = None
    while True:
        result = await probe(state)
        state.readiness = result  # what GET /readyz answers, without calling the upstream
        state.readiness_at = asyncio.get_running_loop().time()
        if result.ready != was_ready:
            log.log(
                logging.INFO if result.ready else logging.WARNING,
                "upstream %s%s",
                "ready" if result.ready else "not ready",
                "" if result.ready else f": {result.reason}",
            )
            was_ready = result.ready
        await asyncio.sleep(interval_s)


async def current(state, interval_s: float) -> Readiness:
    """The readiness /readyz reports: the background probe's latest answer, so an
    unauthenticated caller cannot make the proxy call the upstream on every hit. Before the
    first background result, or without a background probe (interval 0), /readyz probes itself,
    at most once per second whatever the number of callers."""
    now = asyncio.get_running_loop().time()
    latest = getattr(state, "readiness", None)
    last_at = getattr(state, "readiness_at", None)
    if latest is not None and (interval_s > 0 or now - last_at < 1.0):
        return latest
    if last_at is not None and now - last_at < 1.0:
        return Readiness(False, None, "the first readiness probe is under way")
    state.readiness_at = now
    latest = state.readiness = await probe(state)
    return latest
