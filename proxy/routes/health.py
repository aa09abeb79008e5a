"""GET /healthz (process up) and GET /readyz (upstream reachable and model loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from proxy.errors import JSON
from proxy.readiness import current

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSON:
    state = request.app.state
    result = await current(state, state.settings.upstream.probe_interval_s)
    if not result.ready:
        return JSON({"status": "unavailable", "reason": result.reason}, status_code=503)
    return JSON({"status": "ready", "model": result.model})
