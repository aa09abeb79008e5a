"""The model name the proxy serves: configured, or the upstream's only model, asked once."""

from __future__ import annotations

from proxy.upstream import Upstream, UpstreamError


class ServedModel:
    """The model name clients must send: configured, or learned from the upstream once."""

    def __init__(self, upstream: Upstream, configured: str | None) -> None:
        self._upstream = upstream
        self.name = configured

    async def resolve(self) -> str:
        if self.name is None:
            models = await self._upstream.models()
            if not models:
                raise UpstreamError(
                    "malformed",
                    503,
                    "the model server lists no model yet",
                    "upstream_unavailable",
                    {"retry-after": "1"},
                )
            self.name = models[0]["id"]
        return self.name
