"""The per-response write timeout (proxy.middleware.WriteWatch): one timer per response, the same
behaviour as `asyncio.timeout` around every send."""

from __future__ import annotations

import asyncio

import pytest

from proxy.middleware import WriteWatch


def test_a_stalled_send_times_out_and_slow_progress_does_not():
    async def main():
        watch = WriteWatch(0.1)

        async def slow(message):
            await asyncio.sleep(0.04)  # each send well within the limit, all of them beyond it

        for _ in range(6):
            await watch.send(slow, {})

        async def stalled(message):
            await asyncio.Event().wait()

        with pytest.raises(TimeoutError):
            await watch.send(stalled, {})
        # The task was not left cancelled: it goes on awaiting normally.
        await asyncio.sleep(0)
        assert asyncio.current_task().cancelling() == 0
        watch.close()

    asyncio.run(main())


def test_a_send_from_another_task_is_the_one_cancelled_and_an_outside_cancel_stays_one():
    async def main():
        watch = WriteWatch(0.05)

        async def stalled(message):
            await asyncio.Event().wait()

        pump = asyncio.ensure_future(watch.send(stalled, {}))
        with pytest.raises(TimeoutError):
            await pump
        # A cancel that did not come from the watch is not turned into a TimeoutError.
        other = asyncio.ensure_future(watch.send(stalled, {}))
        await asyncio.sleep(0.01)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other
        watch.close()

    asyncio.run(main())


def test_closing_the_watch_leaves_no_timer_behind():
    async def main():
        watch = WriteWatch(30.0)

        async def instant(message):
            pass

        await watch.send(instant, {})
        assert watch._handle is not None
        watch.close()
        assert watch._handle is None

    asyncio.run(main())
