"""GET /healthz (process up) and GET /readyz (upstream reachable and model loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from proxy.upstream import UpstreamError

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> ORJSONResponse:
    state = request.app.state
    gauge = state.metrics.upstream_ready
    try:
        models = await state.upstream.models()
        name = await state.served_model.resolve()
    except UpstreamError as exc:
        gauge.labels(state.served_model.name or "unknown").set(0)
        return ORJSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503)
    if not any(m["id"] == name for m in models):
        gauge.labels(name).set(0)
        return ORJSONResponse({"status": "unavailable",
                               "reason": f"the upstream does not serve '{name}'"}, status_code=503)
    gauge.labels(name).set(1)
    return ORJSONResponse({"status": "ready", "model": name})
