"""A pipelined Redis connection for the request path.

redis-py's per-call path (pool checkout with locks and observability hooks, a Python RESP encoder,
a reader task) costs ~100 µs of CPU per call; the limiter calls Redis on every request. This
channel is one connection driven by an asyncio protocol: commands are packed by hiredis (C), every
command submitted during one event-loop iteration goes out in a single write, and replies are
parsed by hiredis as bytes arrive and handed to the waiting futures in order (Redis answers a
connection's commands in order). A few µs per call, one connection however many requests are in
flight.

Failure handling: a connect that takes longer than ``timeout_s``, or a connection that owes
replies and sends none for ``timeout_s`` (checked every ``timeout_s``), is aborted; a lost
connection fails every call in flight with ``ConnectionError``. The next call reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import NoScriptError, ResponseError

Command = Sequence[Any]
OrphanHook = Callable[[Any], None]


def _reply_error(error: hiredis.ReplyError) -> ResponseError:
    message = str(error)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class _Pipe(asyncio.Protocol):
    """The protocol of one connection: FIFO futures, replies parsed in ``data_received``."""

    def __init__(self, channel: RedisChannel) -> None:
        self.channel = channel
        self.reader = hiredis.Reader()
        #: (future, hook called with the reply if the future was cancelled meanwhile), in send order.
        self.waiting: deque[tuple[asyncio.Future[Any], OrphanHook | None]] = deque()
        self.transport: asyncio.Transport | None = None
        #: Commands written and replies read on this connection (the timeout compares them).
        self.sent = 0
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # not RESP: nothing more can be trusted
                self.abort(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step, drop it
                self.abort(ConnectionError("unexpected reply from Redis"))
                return
            future, orphan = waiting.popleft()
            self.answered += 1
            if future.done():  # the caller went away; the command ran all the same
                if orphan is not None and not isinstance(reply, hiredis.ReplyError):
                    orphan(reply)
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_reply_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis connection lost: {exc}" if exc else "Redis connection closed"))
        self.channel._lost(self)

    def fail(self, error: BaseException) -> None:
        while self.waiting:
            future, _orphan = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def abort(self, error: BaseException) -> None:
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()


class RedisChannel:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        path: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.db, self.path, self.tls = host, port, db, path, tls
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Task[None] | None = None
        #: Packed commands and their futures not yet written (the current loop iteration's batch).
        self._buffer: list[bytes] = []
        self._buffered: list[tuple[asyncio.Future[Any], OrphanHook | None]] = []
        self._scheduled = False
        self._closed = False
        #: Writes to Redis (each one network round trip for its batch), for the benchmark.
        self.batches = 0

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 1.0) -> RedisChannel:
        """redis://[user:password@]host[:port][/db], rediss://... (TLS), unix:///path[?db=N]."""
        parsed = urlparse(url)
        user = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        if parsed.scheme == "unix":
            db = int(dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part).get("db", 0))
            return cls(path=parsed.path, db=db, username=user, password=password, timeout_s=timeout_s)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r}")
        db = int(parsed.path.lstrip("/") or 0)
        tls = ssl.create_default_context() if parsed.scheme == "rediss" else None
        return cls(
            parsed.hostname or "127.0.0.1",
            parsed.port or 6379,
            db=db,
            username=user,
            password=password,
            tls=tls,
            timeout_s=timeout_s,
        )

    # -- calls ------------------------------------------------------------------------------------

    def submit(
        self, command: Command, *, urgent: bool = False, on_orphan: OrphanHook | None = None
    ) -> asyncio.Future[Any]:
        """Queue ``command``; the future gets its reply (bytes, int, list) or its error.

        Commands are written on the next loop iteration, so those submitted in this one share the
        write. ``urgent`` writes at once (with whatever is queued) when the connection is idle:
        nothing to batch with, and a loop iteration less of latency. ``on_orphan`` is called with
        the reply if the future was cancelled before it arrived (the command ran regardless).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(ConnectionError("limiter channel is closed"))
            return future
        self._buffer.append(hiredis.pack_command(tuple(command)))
        self._buffered.append((future, on_orphan))
        pipe = self._pipe
        if urgent and pipe is not None and not pipe.waiting:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    async def call(self, *command: Any) -> Any:
        return await self.submit(command)

    async def call_many(self, commands: Sequence[Command]) -> list[Any]:
        """Replies in order; a failed command's slot holds its exception."""
        futures = [self.submit(command) for command in commands]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def _flush(self) -> None:
        self._scheduled = False
        if not self._buffered:
            return
        pipe = self._pipe
        if pipe is None or pipe.transport is None or pipe.transport.is_closing():
            if self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return  # written once connected (or failed if the connection cannot be made)
        payload = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        entries = self._buffered
        self._buffer, self._buffered = [], []
        pipe.waiting.extend(entries)
        pipe.transport.write(payload)
        pipe.sent += len(entries)
        self.batches += 1

    def _watch(self, pipe: _Pipe, sent_before: int, answered_before: int) -> None:
        """Every ``timeout_s``: if replies were already owed at the last look and none has come
        since, the connection is stuck (so a reply is late by at most twice the timeout). One
        timer per connection, not one per write."""
        if pipe is not self._pipe:
            return
        if sent_before > answered_before and pipe.answered == answered_before:
            pipe.abort(TimeoutError(f"Redis did not answer within {self.timeout_s} s"))
            return
        asyncio.get_running_loop().call_later(self.timeout_s, self._watch, pipe, pipe.sent, pipe.answered)

    # -- connection -------------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.path:
                    _, pipe = await loop.create_unix_connection(lambda: _Pipe(self), self.path)
                else:
                    _, pipe = await loop.create_connection(lambda: _Pipe(self), self.host, self.port, ssl=self.tls)
                try:
                    await self._handshake(pipe)
                except BaseException:
                    pipe.abort(ConnectionError("Redis handshake failed"))
                    raise
        except BaseException as exc:
            self._connecting = None
            if isinstance(exc, ConnectionError | TimeoutError):
                self._fail_buffered(exc)
            else:  # OSError (refused, unreachable), a handshake ResponseError, a cancellation
                self._fail_buffered(ConnectionError(f"Redis connect failed: {exc!r}"))
            if not isinstance(exc, Exception):
                raise
            return
        self._connecting = None
        if pipe.transport is None or pipe.transport.is_closing():
            # Closed while connecting: fail this batch; the next call tries again.
            pipe.fail(ConnectionError("Redis connection closed while connecting"))
            self._fail_buffered(ConnectionError("Redis connection closed while connecting"))
            return
        self._pipe = pipe
        loop.call_later(self.timeout_s, self._watch, pipe, pipe.sent, pipe.answered)
        self._flush()

    async def _handshake(self, pipe: _Pipe) -> None:
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        if not commands:
            return
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        pipe.waiting.extend((future, None) for future in futures)
        pipe.sent += len(futures)
        assert pipe.transport is not None
        pipe.transport.write(b"".join(hiredis.pack_command(command) for command in commands))
        for future in futures:
            await future  # raises ResponseError on a wrong password or database

    def _fail_buffered(self, error: BaseException) -> None:
        entries, self._buffer, self._buffered = self._buffered, [], []
        for future, _orphan in entries:
            if not future.done():
                future.set_exception(error)

    def _lost(self, pipe: _Pipe) -> None:
        if self._pipe is pipe:
            self._pipe = None

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        self._fail_buffered(ConnectionError("limiter channel is closed"))
        pipe = self._pipe
        if pipe is not None and pipe.transport is not None:
            pipe.transport.close()
            pipe.fail(ConnectionError("limiter channel is closed"))
        self._pipe = None
