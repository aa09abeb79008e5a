"""Where verified-history digests live: in this process (default) or in Redis, so that replicas
behind one Service accept each other's answers. See proxy/policy/history.py for what is recorded.

Both stores keep a digest for `ttl_s` seconds after the answer finished. Only digests are stored
(32 bytes each, keyed by a server secret), never answer text.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class HistoryStore(Protocol):
    async def add(self, digests: list[bytes]) -> None: ...

    async def missing(self, digests: list[bytes]) -> list[int]:
        """Positions (in `digests`) of those not recorded."""

    async def aclose(self) -> None: ...


class MemoryHistory:
    """A bounded in-process record: oldest entries go first when `max_entries` is reached."""

    def __init__(self, ttl_s: float, max_entries: int, clock=time.monotonic) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    async def add(self, digests: list[bytes]) -> None:
        expires = self._clock() + self._ttl
        for d in digests:
            self._expiry[d] = expires
            self._expiry.move_to_end(d)
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)

    async def missing(self, digests: list[bytes]) -> list[int]:
        now = self._clock()
        out = []
        for i, d in enumerate(digests):
            expires = self._expiry.get(d)
            if expires is None or expires <= now:
                out.append(i)
        return out

    async def aclose(self) -> None:
        self._expiry.clear()


class RedisHistory:
    """Digests as Redis keys with an expiry (`SET key 1 EX ttl`); one round trip per request."""

    PREFIX = b"deepguard:history:"

    def __init__(self, url: str, ttl_s: float) -> None:
        import redis.asyncio as redis  # only needed when Redis is configured

        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl = max(1, int(ttl_s))

    async def add(self, digests: list[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for d in digests:
                pipe.set(self.PREFIX + d, b"1", ex=self._ttl)
            await pipe.execute()

    async def missing(self, digests: list[bytes]) -> list[int]:
        if not digests:
            return []
        values = await self._redis.mget([self.PREFIX + d for d in digests])
        return [i for i, v in enumerate(values) if v is None]

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_store(settings) -> HistoryStore:
    """The store the settings ask for (`proxy.config.HistorySettings`)."""
    if settings.redis_url:
        return RedisHistory(settings.redis_url, settings.ttl_s)
    return MemoryHistory(settings.ttl_s, settings.max_entries)
