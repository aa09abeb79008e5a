"""One time limit for a run of waits: each wait may last at most `timeout_s`.

The streamed path waits once per token on each side (a read from the model server, a write to
the client). A timer armed and cancelled around every wait (a TimerHandle and two heap operations
each time, or asyncio.timeout's Timeout object too) was a visible share of the per-token cost.
Here one timer is armed at the first wait; when it comes due it checks the wait under way then,
and either expires it or moves itself to that wait's own deadline. With no wait under way it
lapses, and the next wait arms it again.
"""

from __future__ import annotations

import asyncio


class WaitDeadline:
    """Call `begin()` when a wait starts and `end()` when it is over; a subclass's `expired()` is
    called when a wait has lasted `timeout_s`. `close()` when no more waits will come.

    `expired` is a method, not a callback: a bound method of the owner stored here would make
    owner and deadline a reference cycle, left to the garbage collector once per response."""

    __slots__ = ("_loop", "_timeout_s", "_since", "_handle")

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout_s = timeout_s
        self._since: float | None = None  # when the wait under way began
        self._handle: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        self._since = since = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(since + self._timeout_s, self._check)

    def end(self) -> None:
        self._since = None

    def _check(self) -> None:
        self._handle = None
        since = self._since
        if since is None:
            return
        due = since + self._timeout_s
        if due > self._loop.time():
            self._handle = self._loop.call_at(due, self._check)
            return
        self.expired()

    def expired(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
