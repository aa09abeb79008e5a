"""The streamed response and the disconnect watch (proxy/event_stream.py), in process at the ASGI
level: a client that leaves cancels the answer where it waits and closes the iterator, so the
upstream request is closed (and vLLM aborts it); a client that stays gets every piece."""

import asyncio

import pytest

from proxy.event_stream import (
    SSE_DONE,
    ClientGone,
    EventStreamResponse,
    cancel_on_disconnect,
    sse,
)


def test_sse_writes_one_data_event_per_object():
    assert sse({"a": 1}, {"b": 2}) == b'data: {"a":1}\n\ndata: {"b":2}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def receiver(disconnect: asyncio.Event):
    async def receive():
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


def test_a_client_that_stays_gets_every_piece_and_the_end():
    async def main():
        async def pieces():
            for piece in (b"one", b"two"):
                yield piece

        sent = []

        async def send(message):
            sent.append(message)

        await EventStreamResponse(pieces())({"type": "http"}, receiver(asyncio.Event()), send)
        return sent

    sent = asyncio.run(main())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [m.get("body") for m in sent[1:]] == [b"one", b"two", b""]
    assert sent[-1]["more_body"] is False


def test_a_client_that_leaves_cancels_the_answer_where_it_waits_and_closes_it():
    events = []

    async def main():
        gone = asyncio.Event()
        upstream_waits = asyncio.Event()

        async def pieces():
            try:
                yield b"first"
                upstream_waits.set()
                await asyncio.sleep(3600)  # the model server is thinking
                yield b"never sent"
            except asyncio.CancelledError:
                events.append("cancelled while waiting")
                raise
            finally:
                events.append("closed")  # where the upstream request is closed

        sent = []

        async def send(message):
            sent.append(message)

        response = asyncio.ensure_future(
            EventStreamResponse(pieces())({"type": "http"}, receiver(gone), send)
        )
        await upstream_waits.wait()
        gone.set()
        await asyncio.wait_for(response, 5)  # returns promptly: no stuck stream
        return sent

    sent = asyncio.run(main())
    assert [m.get("body") for m in sent[1:]] == [b"first"]
    assert events == ["cancelled while waiting", "closed"]


def test_cancel_on_disconnect_returns_the_result_or_says_the_client_is_gone():
    async def main(leave: bool):
        gone = asyncio.Event()
        if leave:
            gone.set()

        async def work():
            await asyncio.sleep(0 if not leave else 3600)
            return "answer"

        return await cancel_on_disconnect(receiver(gone), work())

    assert asyncio.run(main(leave=False)) == "answer"
    with pytest.raises(ClientGone):
        asyncio.run(main(leave=True))
