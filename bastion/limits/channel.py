"""A pipelined Redis channel for the request path.

redis-py's per-call path (pool checkout with locks and observability hooks, then the command)
costs ~100 µs of CPU per call here; the limiter calls Redis on every request. This channel keeps a
few dedicated connections and writes every command that accumulated while they were busy as one
pipeline (one write, one read loop): ~50 µs of CPU for a lone call, under 10 µs per call in a batch,
and a bounded number of connections however many requests are in flight.

Calls are answered in order per connection. A connection that fails (reset, timeout) is closed and
every call of its batch fails with that error; the next batch reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

Command = Sequence[Any]


class RedisChannel:
    def __init__(self, redis: Redis, connections: int = 4, max_batch: int = 512) -> None:
        self._pool = redis.connection_pool
        self._free: list[AbstractConnection] = [self._pool.make_connection() for _ in range(connections)]
        self._all = list(self._free)
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._max_batch = max_batch
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue ``command``; the future gets its reply (or the error it raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(ConnectionError("limiter channel is closed"))
            return future
        self._pending.append((command, future))
        if not self._scheduled and self._free:
            # Dispatch on the next loop iteration: requests arriving in this one join the batch.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return future

    async def call(self, *command: Any) -> Any:
        return await self.submit(command)

    async def call_many(self, commands: Sequence[Command]) -> list[Any]:
        """Replies in order; a failed command's slot holds its exception."""
        futures = [self.submit(command) for command in commands]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def _dispatch(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._free and self._pending:
            connection = self._free.pop()
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            task = loop.create_task(self._run(connection, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, connection: AbstractConnection, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            await connection.send_packed_command(connection.pack_commands([command for command, _ in batch]))
            for _command, future in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as exc:  # an error reply: the connection is still in step
                    if not future.done():
                        future.set_exception(exc)
                    continue
                if not future.done():
                    future.set_result(reply)
        except BaseException as exc:
            # The connection's state is unknown (a reply may be half read): close it, fail the batch.
            with contextlib.suppress(Exception):
                await connection.disconnect()
            error = exc if isinstance(exc, Exception) else ConnectionError("limiter call cancelled")
            for _command, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._free.append(connection)
            if self._pending and not self._scheduled and not self._closed:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._dispatch)

    async def aclose(self) -> None:
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for command_future in self._pending:
            if not command_future[1].done():
                command_future[1].set_exception(ConnectionError("limiter channel is closed"))
        self._pending.clear()
        for connection in self._all:
            with contextlib.suppress(Exception):
                await connection.disconnect()
