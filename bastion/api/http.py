"""HTTP plumbing for the endpoints: bounded body reading, JSON and SSE responses, and cancelling
the work of a request whose client has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, BinaryIO

import orjson
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.errors import ClientClosedRequest, InvalidRequest, PayloadTooLarge

log = structlog.get_logger("bastion.http")


class ClientDisconnected(Exception):
    """The client closed the connection; the work done for it has been cancelled."""


async def read_json(request: Request, max_bytes: int) -> Any:
    """Read and parse the body, refusing more than ``max_bytes`` (413) and bad JSON (400)."""
    body = await read_body(request, max_bytes)
    if not body:
        raise InvalidRequest("Request body is empty; a JSON object is expected.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Request body is not valid JSON.") from None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413); a client gone mid-upload is a 499."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise PayloadTooLarge(f"Request body is larger than the {max_bytes}-byte limit.")
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"Request body is larger than the {max_bytes}-byte limit.")
            chunks.append(chunk)
    except ClientDisconnect:
        # Routine (a client gave up or timed out mid-upload): one line, no traceback, no answer.
        log.info("client_disconnected", during="request_body", path=request.url.path, received_bytes=size)
        raise ClientClosedRequest("The client closed the connection before its request was complete.") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


class CancelOnDisconnect:
    """Cancel the current task if the client disconnects while the block runs.

    Starts a watcher on ``receive``; use it only after the request body has been read. Exit the
    block before sending the last part of the response (the server reports a finished response
    as a disconnect too). On a disconnect the block raises ``ClientDisconnected``.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                assert self._task is not None
                self._task.cancel()
                return

    async def __aenter__(self) -> CancelOnDisconnect:
        self._task = asyncio.current_task()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self._watcher is not None and self._task is not None
        self._watcher.cancel()
        if self.disconnected:
            if self._task.cancelling():
                self._task.uncancel()
            raise ClientDisconnected() from None
        return False


class _EventBuffer:
    """Events handed from the producing task to the writing one.

    The producer appends whatever the stream yields without suspending; the writer takes
    everything buffered at once. Events that were ready together (several SSE events in one
    upstream read) so leave in one socket write, while an event that arrives alone is written at
    once: no delay is ever added. The buffer is bounded: a slow client pauses the producer.
    """

    __slots__ = ("_loop", "_room", "_size", "_wakeup", "done", "events")

    #: Small: what is taken goes out in one write that sits in the transport's buffer while the
    #: client does not read, so this also bounds what a stalled client pins there.
    LIMIT_BYTES = 64 << 10

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.done = False
        self._size = 0
        self._loop = asyncio.get_running_loop()
        self._wakeup: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None

    async def put(self, event: bytes) -> None:
        self.events.append(event)
        self._size += len(event)
        self._wake()
        if self._size > self.LIMIT_BYTES:
            self._room = self._loop.create_future()
            await self._room

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def take(self) -> bytes | None:
        """Everything buffered, as one body; None once the producer is done and all is taken."""
        while not self.events:
            if self.done:
                return None
            self._wakeup = self._loop.create_future()
            await self._wakeup
        events, self.events, self._size = self.events, [], 0
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        return events[0] if len(events) == 1 else b"".join(events)


class SSEResponse:
    """A server-sent-events response whose producer is cancelled when the client goes away.

    ``events`` yields ready-encoded event bytes; it is closed however the response ends. It runs
    in a task of its own so that events ready at the same moment are written together.
    """

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        headers: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> None:
        self.events = events
        self.status = status
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        for name, value in (headers or {}).items():
            self.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    async def _produce(self, buffer: _EventBuffer) -> None:
        try:
            async for event in self.events:
                await buffer.put(event)
        finally:
            buffer.close()
            await self.events.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers})
        buffer = _EventBuffer()
        producer = asyncio.get_running_loop().create_task(self._produce(buffer))
        try:
            async with CancelOnDisconnect(receive):
                while (body := await buffer.take()) is not None:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                # The producer's clean-up (closing the stream completes the pipeline: the ledger
                # record) finishes before the response does.
                await producer
        except ClientDisconnected:
            return
        finally:
            if not producer.done():
                # Client gone or sending failed: cancelling the producer cancels the upstream call.
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


#: What an endpoint answers with: a Starlette response, or a stream of server-sent events.
Answer = Response | SSEResponse


async def file_chunks(handle: BinaryIO, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A file's bytes for a streaming response, read in a thread; the file is closed at the end."""
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def page_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A page of a list in the providers' cursor shape: the items, their first and last ids, and
    whether more follow (OpenAI adds ``object: list``)."""
    return {
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
