"""SSEResponse: events ready together leave in one write, a lone event is never held, the producer
is bounded by a slow client, and a client that goes away cancels the producer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

from bastion.api.http import SSEResponse, _EventBuffer


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(dict(message))

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body" and m.get("more_body")]


async def never_disconnect() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def test_events_ready_together_are_written_together() -> None:
    async def events() -> AsyncGenerator[bytes, None]:
        for index in range(5):
            yield b"data: %d\n\n" % index

    recorder = Recorder()
    await SSEResponse(events())({}, never_disconnect, recorder.send)
    assert recorder.bodies == [b"".join(b"data: %d\n\n" % i for i in range(5))]
    assert recorder.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_an_event_that_arrives_alone_is_written_at_once() -> None:
    gate = asyncio.Event()
    recorder = Recorder()

    async def events() -> AsyncGenerator[bytes, None]:
        yield b"data: first\n\n"
        await gate.wait()
        yield b"data: second\n\n"

    task = asyncio.create_task(SSEResponse(events())({}, never_disconnect, recorder.send))
    for _ in range(50):  # bounded: a handful of loop turns suffice
        if recorder.bodies:
            break
        await asyncio.sleep(0)
    assert recorder.bodies == [b"data: first\n\n"]
    gate.set()
    await task
    assert recorder.bodies == [b"data: first\n\n", b"data: second\n\n"]


async def test_a_client_that_goes_away_cancels_the_producer() -> None:
    disconnected = asyncio.Event()
    closed = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def events() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()  # an upstream that never sends again
            yield b"never"
        finally:
            closed.set()

    recorder = Recorder()
    task = asyncio.create_task(SSEResponse(events())({}, receive, recorder.send))
    for _ in range(50):
        if recorder.bodies:
            break
        await asyncio.sleep(0)
    disconnected.set()
    await asyncio.wait_for(task, 5)
    assert closed.is_set()
    assert recorder.messages[-1].get("more_body") is True  # no clean end was sent to a gone client


async def test_the_buffer_pauses_the_producer_past_its_bound() -> None:
    buffer = _EventBuffer()
    big = b"x" * (_EventBuffer.LIMIT_BYTES + 1)
    put = asyncio.create_task(buffer.put(big))
    await asyncio.sleep(0)
    assert not put.done()  # over the bound: waits for the writer
    assert await buffer.take() == big
    await asyncio.wait_for(put, 1)
