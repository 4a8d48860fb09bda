"""The transport's response parsing with answers split at every possible place.

A real socket coalesces and splits bytes as it likes, so these tests drive a ``Connection`` with a
fake transport instead: hypothesis picks the split points, each piece is delivered in its own
event-loop turn (a ``call_soon`` chain, no sleeping), and the caller reads as the providers do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.providers.http import iter_sse_data
from bastion.providers.transport import Response
from bastion.providers.transport.connection import Connection


class FakePool:
    def __init__(self) -> None:
        self.checked_in = 0
        self.dropped = 0

    def checkin(self, conn: Connection) -> None:
        self.checked_in += 1

    def checkout_done(self, conn: Connection) -> None:
        self.dropped += 1

    def idle_lost(self, conn: Connection) -> None:
        pass


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def split(raw: bytes, points: list[int]) -> list[bytes]:
    cuts = [0, *sorted({p for p in points if 0 < p < len(raw)}), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(cuts)]


def drive(pieces: list[bytes], consume: Callable[[Response], Awaitable[Any]]) -> tuple[Any, FakePool]:
    """Deliver ``pieces`` one per loop turn to a connection and run ``consume`` on its response."""

    async def scenario() -> tuple[Any, FakePool]:
        loop = asyncio.get_running_loop()
        pool = FakePool()
        conn = Connection(pool, loop, read_timeout=None)
        conn.connection_made(FakeTransport())
        conn.send(b"POST / HTTP/1.1\r\n\r\n", reused=False)
        remaining = iter(pieces)

        def feed_next() -> None:
            piece = next(remaining, None)
            if piece is not None:
                conn.data_received(piece)
                loop.call_soon(feed_next)

        loop.call_soon(feed_next)
        await conn.wait_head()
        return await consume(Response(conn)), pool

    return asyncio.run(scenario())


def chunked_answer(body: bytes, sizes: list[int], extra_headers: bytes = b"") -> bytes:
    out, at = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + extra_headers + b"\r\n"], 0
    for size in [*sizes, len(body)]:
        part = body[at : at + max(size, 1)]
        if part:
            out.append(b"%x\r\n%b\r\n" % (len(part), part))
        at += len(part)
    out.append(b"0\r\n\r\n")
    return b"".join(out)


async def read_all(response: Response) -> bytes:
    return await response.read()


async def read_pieces(response: Response) -> bytes:
    return b"".join([chunk async for chunk in response])


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=600),
    sizes=st.lists(st.integers(1, 200), max_size=8),
    points=st.lists(st.integers(0, 2000), max_size=12),
    streamed=st.booleans(),
)
def test_chunked_bodies_split_anywhere(body: bytes, sizes: list[int], points: list[int], streamed: bool) -> None:
    raw = chunked_answer(body, sizes)
    got, pool = drive(split(raw, points), read_pieces if streamed else read_all)
    assert got == body
    assert pool.checked_in == 1 and pool.dropped == 0, "a complete kept-alive answer goes back to the pool"


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=600), points=st.lists(st.integers(0, 800), max_size=12), streamed=st.booleans())
def test_content_length_bodies_split_anywhere(body: bytes, points: list[int], streamed: bool) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    got, pool = drive(split(raw, points), read_pieces if streamed else read_all)
    assert got == body and pool.checked_in == 1


# An SSE event: optional name, data lines (no CR/LF inside), and the line ending the server uses.
sse_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30)
sse_event = st.tuples(
    st.none() | st.sampled_from(["message_start", "content_block_delta", "ping"]),
    st.lists(sse_text, min_size=1, max_size=3),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),  # a comment line before it
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(sse_event, max_size=8),
    sizes=st.lists(st.integers(1, 120), max_size=10),
    points=st.lists(st.integers(0, 3000), max_size=16),
)
def test_sse_events_split_across_reads(
    events: list[tuple[str | None, list[str], bytes, bool]], sizes: list[int], points: list[int]
) -> None:
    stream, expected = b"", []
    for name, lines, eol, comment in events:
        if comment:
            stream += b": keep-alive" + eol
        if name is not None:
            stream += b"event: " + name.encode() + eol
        encoded = [line.encode() for line in lines]
        stream += b"".join(b"data: " + line + eol for line in encoded) + eol
        expected.append((name, b"\n".join(line.lstrip(b" ") for line in encoded)))
    raw = chunked_answer(stream, sizes, b"Content-Type: text/event-stream\r\n")

    async def consume(response: Response) -> list[tuple[str | None, bytes]]:
        return [event async for event in iter_sse_data(response)]

    got, pool = drive(split(raw, points), consume)
    assert got == expected
    assert pool.checked_in == 1


def test_sse_several_events_in_one_read_and_a_last_event_without_blank_line() -> None:
    stream = b"data: a\n\ndata: b\r\ndata: c\r\n\r\nevent: end\ndata: {}"
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(stream), stream)

    async def consume(response: Response) -> list[tuple[str | None, bytes]]:
        return [event async for event in iter_sse_data(response)]

    got, _ = drive([raw], consume)
    assert got == [(None, b"a"), (None, b"b\nc"), ("end", b"{}")]
