"""Requests in flight per API key (open access is one key), so one client cannot take every
upstream connection. Over the limit: 429 with Retry-After (the OpenAI client retries it).

`KeySlots` counts in this process. `RedisKeySlots` counts in Redis (`auth.redis_url`), so the limit
holds across the workers of `deepguard serve --workers N` and across replicas. Each process keeps
its counts in its own field of a per-key hash and a short-lived "alive" key beside it: a worker
that dies holding slots stops counting once its alive key expires, so a crash never lowers a
key's limit for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from contextlib import asynccontextmanager

from proxy.config import ApiKey
from proxy.errors import APIError

log = logging.getLogger("deepguard.key_slots")


def over_limit(limit: int) -> APIError:
    return APIError(
        429,
        f"too many requests in flight for this API key (limit {limit}); retry shortly",
        "rate_limit_error",
        None,
        "concurrency_limit",
        {"retry-after": "1"},
    )


class KeySlots:
    """In-flight counts of this process only."""

    def __init__(self, auth_settings, upstream_connections: int) -> None:
        self._default = auth_settings.max_concurrent_per_key or max(1, upstream_connections // 2)
        self._in_flight: dict[str, int] = {}

    def limit_for(self, key: ApiKey | None) -> int:
        return key.max_concurrent if key is not None and key.max_concurrent else self._default

    def take(self, name: str, limit: int) -> None:
        count = self._in_flight.get(name, 0)
        if count >= limit:
            raise over_limit(limit)
        self._in_flight[name] = count + 1

    def give(self, name: str) -> None:
        left = self._in_flight[name] - 1
        if left:
            self._in_flight[name] = left
        else:
            del self._in_flight[name]

    @asynccontextmanager
    async def hold(self, key: ApiKey | None):
        name = key.key if key is not None else ""
        self.take(name, self.limit_for(key))
        try:
            yield
        finally:
            self.give(name)

    async def aclose(self) -> None:
        pass


# Sum the fields of live holders (dropping those whose alive key expired); take a slot if the sum
# is under the limit. KEYS[1]: the key's hash; ARGV: holder id, limit, alive-key prefix.
_ACQUIRE = """
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[3] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if total >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""
_RELEASE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""


class RedisKeySlots:
    """In-flight counts shared through Redis (a single Redis server, not a cluster: the acquire
    script reads alive keys it is not given). Should Redis fail, requests are counted in this
    process instead (the limit then holds per worker) rather than refused."""

    PREFIX = "deepguard:slots:"
    ALIVE_PREFIX = "deepguard:slots-alive:"
    ALIVE_TTL_S = 15
    REFRESH_S = 5.0

    def __init__(self, url: str, auth_settings, upstream_connections: int) -> None:
        import redis.asyncio as redis  # only needed when Redis is configured

        self._local = KeySlots(auth_settings, upstream_connections)
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._alive_key = self.ALIVE_PREFIX + self.holder
        self._refresher: asyncio.Task | None = None
        self._hashes: dict[str, str] = {}

    def _hash_key(self, name: str) -> str:
        # Redis never sees the API key itself, only a digest of it.
        found = self._hashes.get(name)
        if found is None:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            found = self._hashes[name] = self.PREFIX + digest
        return found

    async def start(self) -> None:
        """Announce this holder alive and keep it so while the process runs."""
        with contextlib.suppress(Exception):
            await self._redis.set(self._alive_key, b"1", ex=self.ALIVE_TTL_S)
        self._refresher = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH_S)
            try:
                await self._redis.set(self._alive_key, b"1", ex=self.ALIVE_TTL_S)
            except Exception as exc:  # Redis away: acquire falls back to local counts
                log.warning("cannot refresh the key-slot lease in Redis: %s", exc)

    @asynccontextmanager
    async def hold(self, key: ApiKey | None):
        name = key.key if key is not None else ""
        limit = self._local.limit_for(key)
        redis_key = self._hash_key(name)
        try:
            taken = await self._acquire(
                keys=[redis_key], args=[self.holder, limit, self.ALIVE_PREFIX]
            )
        except Exception as exc:
            log.warning("Redis unavailable for per-key limits, counting in this process: %s", exc)
            taken = None
        if taken is None:
            async with self._local.hold(key):
                yield
            return
        if not taken:
            raise over_limit(limit)
        try:
            yield
        finally:
            try:
                # Shielded: a cancelled request (client gone) must still give its slot back.
                await asyncio.shield(self._release(keys=[redis_key], args=[self.holder]))
            except Exception as exc:
                log.warning("cannot release a key slot in Redis: %s", exc)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        with contextlib.suppress(Exception):
            await self._redis.delete(self._alive_key)
        await self._redis.aclose()


def build_key_slots(auth_settings, upstream_connections: int) -> KeySlots | RedisKeySlots:
    if auth_settings.redis_url:
        return RedisKeySlots(auth_settings.redis_url, auth_settings, upstream_connections)
    return KeySlots(auth_settings, upstream_connections)
