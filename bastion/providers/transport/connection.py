"""One kept-alive HTTP/1.1 connection to an upstream: an asyncio ``Protocol`` fed to httptools.

The whole life of a request happens here: the request bytes are written in one ``write``, httptools
parses the answer as it arrives (de-chunking in ``on_body``), and the caller waits on one future
at a time (the head, the next body bytes, or the end of the body). A single timer per connection
enforces the read timeout: it re-arms itself from the time of the last byte instead of being
cancelled and re-created on every read or request, so a read costs one ``loop.time()``.

States: ``ACTIVE`` (a request in flight, owned by its caller), ``DRAINING`` (the caller let go
before the terminating chunk arrived; the rest is discarded and the connection is pooled if it
completes soon), ``IDLE`` (in the pool) and ``CLOSED``. Every exit from ``ACTIVE``/``DRAINING``
tells the pool exactly once, which keeps its connection count exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final, Protocol, cast

import httptools

#: Unread body bytes above which the socket is no longer read (the upstream then sees TCP
#: back-pressure); it is read again once the reader has taken what is buffered. A stream whose
#: client stopped reading holds this much (plus the socket read that crossed it, and the read its
#: event decoder holds) until the client reads or goes away: keep it small.
HIGH_WATER: Final = 64 << 10
#: A released response whose terminating chunk has not arrived yet is drained for this long and
#: up to this many bytes, so that a stream read up to ``[DONE]`` keeps its connection (a new TLS
#: handshake per streamed answer would cost far more than waiting for a few bytes).
DRAIN_TIMEOUT_S: Final = 5.0
DRAIN_MAX_BYTES: Final = 64 << 10

ACTIVE, DRAINING, IDLE, CLOSED = "active", "draining", "idle", "closed"
# What the caller waits for.
_HEAD, _DATA, _COMPLETE = 1, 2, 3


class TransportError(Exception):
    """A connection-level failure: the upstream could not be reached or its answer is unusable."""


class ConnectError(TransportError):
    """The TCP connection or the TLS handshake failed (refused, unreachable, bad certificate)."""


class ConnectionLost(TransportError):
    """The upstream closed the connection (or reset it) before the response was complete."""


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection died before any byte of the answer: safe to resend once."""


class TruncatedResponse(ConnectionLost):
    """The connection closed after the response head but before the end of its body."""


class InvalidResponse(TransportError):
    """The bytes received are not a valid HTTP/1.1 response (or an undecodable body)."""


class ConnectionOwner(Protocol):
    """What a connection tells its pool (``pool.Pool``) whenever it stops being busy."""

    def checkin(self, conn: Connection) -> None: ...

    def checkout_done(self, conn: Connection) -> None: ...

    def idle_lost(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """A socket to one origin; ``pool`` is told whenever the connection stops being busy."""

    def __init__(self, pool: ConnectionOwner, loop: asyncio.AbstractEventLoop, read_timeout: float | None) -> None:
        self.pool = pool
        self.loop = loop
        self.read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.state = ACTIVE  # a new connection is born checked out for the request that opened it
        self.closed = False
        self.idle_since = 0.0
        # -- per request
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.complete = False
        self._parser = httptools.HttpResponseParser(self)
        self._head_done = False
        self._informational = False
        self._until_eof = False
        self._reused = False
        self._got_bytes = False
        self._exc: BaseException | None = None
        # One growing buffer, not a list of the parser's pieces: a stream arrives as hundreds of
        # small chunks, and a stalled reader would pin each as an object of its own (small
        # objects fragment the heap, so their memory is not returned when the stream ends).
        self._body = bytearray()
        self._paused = False
        self._collect_all = False
        self._waiter: asyncio.Future[None] | None = None
        self._wait_for = 0
        self._timer: asyncio.TimerHandle | None = None  # the read timeout
        self._drain_timer: asyncio.TimerHandle | None = None
        self._last_io = 0.0
        self._drained = 0

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Small request writes must not wait for delayed ACKs (Nagle).
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is IDLE or state is CLOSED:
            # Bytes nobody asked for: the connection is out of step with the server; drop it.
            self._close_transport()
            return
        if self.complete:
            # More bytes after a complete answer (none were asked for): not reusable.
            self.keep_alive = False
            return
        self._got_bytes = True
        self._last_io = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InvalidResponse(f"malformed HTTP response: {exc}"))
            return
        if state is DRAINING:
            if self.complete:
                self._drain_done()
            elif self._drained > DRAIN_MAX_BYTES:
                self._drop()
            return
        waiter = self._waiter
        if waiter is not None and self._ready(self._wait_for):
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost reports what was missing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        state = self.state
        if state is IDLE:
            self.state = CLOSED
            self.pool.idle_lost(self)
            return
        if state is DRAINING:
            self._drop()
            return
        if state is not ACTIVE or self.complete or self._exc is not None:
            return
        if self._head_done and self._until_eof:
            # A body without length or chunking ends with the connection: that is its end.
            self.complete = True
            self._wake()
            return
        error: TransportError
        reason = f" ({exc.__class__.__name__}: {exc})" if exc is not None else ""
        if self._head_done:
            error = TruncatedResponse(f"connection closed before the end of the response body{reason}")
        elif self._reused and not self._got_bytes:
            error = StaleConnection(f"kept-alive connection closed by the server{reason}")
        else:
            error = ConnectionLost(f"connection closed before a complete response head{reason}")
        self._fail(error)

    def pause_writing(self) -> None:
        pass  # the request is already in memory; the transport buffers it

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # 1xx (e.g. 103 Early Hints): the real answer follows on the same connection.
            self._informational = True
            self.headers = {}
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        headers = self.headers
        self._until_eof = (
            "content-length" not in headers and "transfer-encoding" not in headers and status not in (204, 304)
        )
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        if self.state is DRAINING:
            self._drained += len(body)
            return
        buffer = self._body
        buffer += body
        if len(buffer) > HIGH_WATER and not self._paused and not self._collect_all and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True

    # -- the request, as the pool and the response drive it -------------------------------------

    def send(self, payload: bytes, reused: bool) -> None:
        """Write one request; the answer is then awaited with ``wait_head``."""
        if reused:
            # The parser is reused: llhttp starts over after a complete kept-alive message.
            self.status = 0
            self.headers = {}
            self.keep_alive = False
            self.complete = False
            self._head_done = False
            self._until_eof = False
            self._got_bytes = False
            self._exc = None
            self._body.clear()
            self._collect_all = False
        self._reused = reused
        self.state = ACTIVE
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            self._exc = StaleConnection("kept-alive connection already closed") if reused else ConnectionLost("closed")
            return
        transport.write(payload)
        self._last_io = self.loop.time()
        if self.read_timeout and self._timer is None:
            # One timer per connection, not per request: still pending from the previous request,
            # it re-arms itself from _last_io when it fires (read_s is long, so it rarely does).
            self._timer = self.loop.call_at(self._last_io + self.read_timeout, self._on_timer)

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet read."""
        return len(self._body)

    async def wait_head(self) -> None:
        while not self._head_done:
            await self._wait(_HEAD)

    async def read_all(self) -> bytes:
        """The whole (remaining) body. Flow control is off: the caller wants all of it anyway."""
        self._collect_all = True
        if self._paused:
            self._resume()
        while not self.complete:
            await self._wait(_COMPLETE)
        body = bytes(self._body)
        self._body.clear()
        return body

    async def read_chunk(self) -> bytes:
        """Every body byte buffered so far (waiting for some if none), or ``b""`` at the end."""
        buffer = self._body
        while not buffer:
            if self.complete:
                return b""
            await self._wait(_DATA)
        data = bytes(buffer)
        buffer.clear()
        if self._paused:
            self._resume()
        return data

    def finish(self, reusable: bool) -> None:
        """The caller is done: pool the connection if its answer is (or soon will be) complete."""
        if self.state is not ACTIVE:
            return
        self._body.clear()
        if self._paused:
            self._resume()  # an idle or draining connection must see the server's bytes and EOF
        if not (reusable and self.keep_alive and self._exc is None and not self.closed):
            self._drop()
        elif self.complete:
            self.state = IDLE
            self.pool.checkin(self)
        elif self._head_done and not self._until_eof:
            self.state = DRAINING
            self._drained = 0
            self._drain_timer = self.loop.call_later(DRAIN_TIMEOUT_S, self._drop)
        else:
            self._drop()

    def close(self) -> None:
        """Drop the connection whatever its state (pool shutdown)."""
        if self.state is IDLE:
            self.state = CLOSED
            self._cancel_timer()
            self._close_transport()
        else:
            self._drop()

    # -- internals ----------------------------------------------------------------------------

    def _ready(self, wait_for: int) -> bool:
        if self.complete:
            return True
        if wait_for == _HEAD:
            return self._head_done
        if wait_for == _DATA:
            return bool(self._body)
        return False

    async def _wait(self, wait_for: int) -> None:
        if self._exc is not None:
            raise self._exc
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._wait_for = wait_for
        # The read timeout counts from the later of the last byte and the start of this wait, so
        # time the caller spent on the previous bytes is not held against the upstream.
        self._last_io = self.loop.time()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        """Record a failure for the caller and drop the socket (it cannot be reused)."""
        if self._exc is None:
            self._exc = error
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(error)
        self._cancel_timer()
        self._close_transport()

    def _on_timer(self) -> None:
        self._timer = None
        if self.state is not ACTIVE or self.read_timeout is None:
            return
        now = self.loop.time()
        deadline = self._last_io + self.read_timeout
        if self._waiter is None:
            # Nobody is waiting: the caller is busy with what it got, or reading is paused.
            self._timer = self.loop.call_at(now + self.read_timeout, self._on_timer)
            return
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)  # bytes came since it was armed
            return
        self._fail(TimeoutError(f"no bytes from the upstream for {self.read_timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def _resume(self) -> None:
        self._paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _drain_done(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if self.keep_alive and not self.closed:
            self.state = IDLE
            self.pool.checkin(self)
        else:
            self._drop()

    def _drop(self) -> None:
        state = self.state
        if state is CLOSED or state is IDLE:
            return
        self.state = CLOSED
        self._cancel_timer()
        self._close_transport()
        self.pool.checkout_done(self)

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
