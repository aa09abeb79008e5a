"""GET /v1/models: only the served model."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from proxy.errors import APIError
from proxy.routes.deps import authenticate

router = APIRouter()
STARTED = int(time.time())


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    authenticate(request)
    name = await request.app.state.served_model.resolve()
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": STARTED, "owned_by": "deepguard"}],
    }


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict:
    authenticate(request)
    name = await request.app.state.served_model.resolve()
    if model_id != name:
        raise APIError(
            404,
            f"the model '{model_id}' does not exist; this server serves '{name}'",
            param="model",
            code="model_not_found",
        )
    return {"id": name, "object": "model", "created": STARTED, "owned_by": "deepguard"}
