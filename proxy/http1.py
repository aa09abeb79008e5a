"""A lean HTTP/1.1 client for the proxy's one hot call (the streamed POST to the model server).

httpx spent ~40% of the proxy's CPU on that call (request building, pool bookkeeping, h11, and
bytes -> text -> lines layers). This is an asyncio protocol around httptools' C parser with a
small keep-alive pool, and nothing else: one request at a time per connection, chunked and
Content-Length bodies (and bodies that end at EOF), a connection reused only after its response
was read to the end and the server allowed keep-alive, connect and read timeouts, and reading
paused when the consumer falls behind (so a slow client never makes the proxy buffer a whole
answer). Errors are three plain exceptions; `proxy.upstream` maps them to `UpstreamError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

import httptools

from proxy.deadline import WaitDeadline

# Pause reading from the socket when this much body is waiting for the consumer.
HIGH_WATER_BYTES = 256 * 1024
# A status line and headers longer than this are not a model server talking.
MAX_HEAD_BYTES = 64 * 1024
# How long a connection whose consumer stopped at [DONE] may take to deliver the rest of the
# response (normally only the chunked terminator) before it is closed instead of reused.
DRAIN_GRACE_S = 1.0


class ConnectFailed(Exception):
    """No connection: refused, unreachable, timed out, or no pool slot within the timeout."""


class ReadTimeout(Exception):
    """The server sent nothing for read_timeout seconds."""


class ProtocolFailure(Exception):
    """The connection broke, or the server sent something that is not HTTP/1.1."""

    def __init__(self, message: str, before_any_byte: bool = False) -> None:
        super().__init__(message)
        # A reused keep-alive connection that fails before answering anything was most likely
        # closed by the server while idle: the request can safely go out again on a fresh one.
        self.before_any_byte = before_any_byte


class Connection(asyncio.Protocol):
    """One TCP connection and the response currently being read from it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.counted = True  # in the pool's count of open connections
        # The read timeout, one timer for all the reads of the connection (see proxy.deadline).
        self._read_deadline = ReadDeadline(pool.read_timeout_s)
        self._reset()

    def _reset(self) -> None:
        self._parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.headers_done = False
        self.complete = False
        self._framed = False  # Content-Length or chunked; otherwise the body ends at EOF
        self._keep_alive = False
        self._head_bytes = 0
        self._received_any = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future | None = None
        self._release_on_complete = False
        self._drain_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self.complete:
            # Bytes nobody asked for (idle, or after the response ended): not a sane server.
            self._fail(ProtocolFailure("the server sent data outside a response"))
            return
        self._received_any = True
        if not self.headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(ProtocolFailure("the response head is too large"))
                return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ProtocolFailure(f"malformed HTTP response: {exc}"))
            return
        if self._buffered > HIGH_WATER_BYTES and not self._paused and not self.complete:
            self._paused = True
            self.transport.pause_reading()
        if self.complete and self._release_on_complete:
            self._release_or_close()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the bookkeeping

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        self._read_deadline.close()
        if self._parser is not None and not self.complete and self._error is None:
            if self.headers_done and not self._framed and exc is None:
                self.complete = True  # an EOF-delimited body ends here
            else:
                self._error = ProtocolFailure(
                    "the server closed the connection mid-response",
                    before_any_byte=not self._received_any,
                )
        self._wake()

    # -- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (
            name == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational (100 Continue, 103 Early Hints): the real answer follows
        self.headers_done = True
        # Asked now: llhttp clears the message's flags once it ends.
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            self._framed = False
            return
        self.complete = True

    # -- reading ------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self.close()
        self._wake()

    async def _wait(self) -> None:
        waiter = self._waiter = self._read_deadline.waiter = self._loop.create_future()
        self._read_deadline.begin()
        try:
            await waiter
        finally:
            self._waiter = None
            self._read_deadline.end()

    async def read_head(self) -> int:
        """Wait for the status line and headers; returns the status code."""
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ProtocolFailure("the server closed the connection", not self._received_any)
            await self._wait()
        return self.status

    async def read_body(self) -> bytes | None:
        """The body bytes received since the last call (waiting for some), or None at its end."""
        while True:
            if self._body:
                body = self._body
                data = body.popleft() if len(body) == 1 else b"".join(body)
                body.clear()
                self._buffered = 0
                if self._paused:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return None
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ProtocolFailure("the server closed the connection mid-response")
            await self._wait()

    async def read_all(self, limit: int) -> bytes:
        """The rest of the body, at most `limit` bytes (enough of an error body to report)."""
        parts, size = [], 0
        while size < limit and (data := await self.read_body()) is not None:
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    # -- giving the connection back -----------------------------------------------------------
    def release_when_complete(self) -> None:
        """The consumer has all it wants: reuse the connection once the response has ended
        (usually it already has; else give it DRAIN_GRACE_S for the chunked terminator)."""
        if self.complete or self._error is not None or self.closed:
            self._release_or_close()
            return
        self._release_on_complete = True
        self._body.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        self._drain_timer = self._loop.call_later(DRAIN_GRACE_S, self.close)

    def _release_or_close(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        reusable = (
            self.complete
            and self._error is None
            and not self.closed
            and not self._paused
            and self._keep_alive
        )
        self._release_on_complete = False
        if reusable:
            self._reset()
            self._pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        self._read_deadline.close()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self._pool.forget(self)

    def start(self, request: bytes) -> None:
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(request)


class Response:
    """One response being read; owns its connection until released or closed."""

    __slots__ = ("status", "_conn")

    def __init__(self, conn: Connection) -> None:
        self.status = conn.status
        self._conn: Connection | None = conn

    async def read_body(self) -> bytes | None:
        """Body bytes received since the last call (waiting for some), or None at the end."""
        return await self._conn.read_body()

    async def read_all(self, limit: int) -> bytes:
        return await self._conn.read_all(limit)

    def release_when_complete(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release_when_complete()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class ReadDeadline(WaitDeadline):
    """The read timeout: fails the read under way (its future) once it has waited too long."""

    __slots__ = ("waiter",)

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.waiter: asyncio.Future | None = None

    def expired(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ReadTimeout())


class Pool:
    """Keep-alive connections to one origin, most recently used first, at most `max_connections`
    open at a time."""

    def __init__(
        self, base_url: str, connect_timeout_s: float, read_timeout_s: float, max_connections: int
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"upstream URL must be http(s)://host[:port][/prefix], not {base_url!r}"
            )
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = parts.port is None
        self.host_header = parts.hostname if default_port else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname:  # IPv6 literal
            self.host_header = (
                f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{parts.port}"
            )
        self.path_prefix = parts.path.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self._idle: dict[Connection, None] = {}
        self._open = 0
        self._slot_waiters: deque[asyncio.Future] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def request(self, data: bytes) -> Response:
        """Send one complete request; returns its response once the head is in.

        The caller reads the body and must end with `release_when_complete` (it read what it
        needed) or `close` (it stops here; a no-op after release).
        """
        fresh = False
        while True:
            conn = await self._acquire(fresh)
            conn.start(data)
            try:
                await conn.read_head()
                return Response(conn)
            except ProtocolFailure as exc:
                conn.close()
                if conn.reused and exc.before_any_byte:
                    fresh = True  # a stale keep-alive connection: try once on a new one
                    continue
                raise
            except BaseException:
                conn.close()
                raise

    async def _acquire(self, fresh: bool) -> Connection:
        while not fresh and self._idle:
            conn = next(reversed(self._idle))
            del self._idle[conn]
            if not conn.closed and not conn.transport.is_closing():
                conn.reused = True
                return conn
            conn.close()
        while self._open >= self.max_connections:
            if self._idle:  # make room by dropping the least recently used idle connection
                next(iter(self._idle)).close()
                continue
            waiter = self.loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.connect_timeout_s)
            except TimeoutError:
                raise ConnectFailed("no free connection to the server in time") from None
            finally:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)
            if not fresh and self._idle:
                return await self._acquire(False)
        self._open += 1
        conn = Connection(self)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, self.host, self.port, ssl=self.ssl),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            conn.close()
            self.forget(conn)
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        except BaseException:
            conn.close()
            self.forget(conn)
            raise
        return conn

    def release(self, conn: Connection) -> None:
        self._idle[conn] = None
        self._wake_slot_waiter()

    def forget(self, conn: Connection) -> None:
        """A connection closed (by us or by the server): it no longer counts."""
        self._idle.pop(conn, None)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_slot_waiter()

    def _wake_slot_waiter(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._idle):
            conn.close()
        self._idle.clear()
