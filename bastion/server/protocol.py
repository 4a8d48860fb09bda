"""uvicorn's httptools protocol with the limits uvicorn lacks.

- **Header timeout** (slowloris): a request's line and headers must be complete within
  ``header_timeout_s`` of its first byte; a new connection must send one within that time too.
  A client that started a request gets 408, one that never spoke is just closed.
- **Body timeout** (slow body): the whole body must arrive within ``body_timeout_s`` of the
  headers; else 408 (if no answer started) and the connection is closed.
- **Capacity**: beyond ``max_connections`` open connections or ``max_concurrent_requests``
  requests in progress, a request is answered 503 in the dialect's JSON, with ``Retry-After``.
- **Send buffer**: each connection's kernel send buffer is capped, so a stream cannot run far
  ahead of a client that stopped reading (back-pressure then reaches the upstream early).

Idle kept-alive connections are closed by uvicorn's own keep-alive timeout. Timers are armed only
while a request is incomplete after a read, so a request that arrives in one read costs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import time
from typing import Any, Final

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bastion.api.errors import error_body
from bastion.dialects.errors import dialect_for_path
from bastion.errors import BastionError, RequestTimeout, ServerOverloaded
from bastion.observability.metrics import HTTP_REFUSED
from bastion.server.limits import ConnectionLimits
from bastion.server.memory import MemoryTrimmer

log = structlog.get_logger("bastion.server")

# What the connection is waiting for; a deadline runs only for _HEAD and _BODY.
_IDLE, _HEAD, _BODY = 0, 1, 2
_REFUSAL_LOG_INTERVAL_S: Final = 10.0
_TRIMMERS: dict[int, MemoryTrimmer] = {}  # one per process (a worker runs one loop)


class _RefusalLog:
    """At most one log line per reason every few seconds: a flood must not flood the logs too."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def note(self, reason: str, **fields: Any) -> None:
        HTTP_REFUSED.labels(reason=reason).inc()
        self._count[reason] = self._count.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last.get(reason, -_REFUSAL_LOG_INTERVAL_S) >= _REFUSAL_LOG_INTERVAL_S:
            self._last[reason] = now
            log.warning("http_limit", reason=reason, since_last_line=self._count.pop(reason), **fields)


_REFUSALS = _RefusalLog()


def _error_response(error: BastionError, path: str) -> bytes:
    body = error_body(error, dialect_for_path(path))
    head = [f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}", "content-type: application/json"]
    head += [f"{name}: {value}" for name, value in error.headers.items()]
    head += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


def overloaded_error() -> ServerOverloaded:
    return ServerOverloaded("The server is at its connection limit; retry shortly.", headers={"retry-after": "1"})


async def _answer_overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app a request beyond the capacity limits gets instead of the gateway."""
    error = overloaded_error()
    body = error_body(error, dialect_for_path(scope["path"]))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus header/body timeouts, capacity limits and a capped send buffer."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, "connection_limits", None) or ConnectionLimits()
        self._waiting_for = _IDLE
        self._deadline: asyncio.TimerHandle | None = None
        self._spoke = False  # whether any byte of a request arrived on this connection

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        size = self.limits.send_buffer_bytes
        if size:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        self._start_trimmer()
        # A new connection must start its request in time too (idle connections are not free).
        self._waiting_for = _HEAD
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._waiting_for = _IDLE
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A request still incomplete after this read gets a deadline (none if it is already armed:
        # trickling bytes does not extend it).
        if self._waiting_for is not _IDLE and self._deadline is None and not self.transport.is_closing():
            self._arm()

    # -- parser callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._spoke = True
        self._waiting_for = _HEAD

    def on_headers_complete(self) -> None:
        self._disarm()
        self._waiting_for = _BODY
        limits = self.limits
        if len(self.connections) > limits.max_connections or len(self.tasks) >= limits.max_concurrent_requests:
            _REFUSALS.note("over_capacity", connections=len(self.connections), requests=len(self.tasks))
            gateway_app, self.app = self.app, _answer_overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = gateway_app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._waiting_for = _IDLE
        super().on_message_complete()

    # -- deadlines --------------------------------------------------------------------------------

    def _arm(self) -> None:
        limits = self.limits
        delay = limits.header_timeout_s if self._waiting_for is _HEAD else limits.body_timeout_s
        self._deadline = self.loop.call_later(delay, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        transport = self.transport
        if self._waiting_for is _IDLE or transport.is_closing():
            return
        client = self.client[0] if self.client else None
        if self._waiting_for is _HEAD:
            _REFUSALS.note("header_timeout", client=client)
            if self._spoke:
                error = RequestTimeout(f"Request headers not received within {self.limits.header_timeout_s:g} s.")
                transport.write(_error_response(error, ""))
        else:
            _REFUSALS.note("body_timeout", client=client)
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                error = RequestTimeout(f"Request body not received within {self.limits.body_timeout_s:g} s.")
                transport.write(_error_response(error, self.scope.get("path", "")))
                # The endpoint still waiting for the body sees a disconnect; its answer goes nowhere.
                cycle.response_started = True
                cycle.disconnected = True
                cycle.message_event.set()
        self._waiting_for = _IDLE
        transport.close()

    # -- memory ---------------------------------------------------------------------------------

    def _start_trimmer(self) -> None:
        interval = self.limits.memory_trim_interval_s
        if interval <= 0:
            return
        trimmer = _TRIMMERS.get(id(self.loop))
        if trimmer is None:
            connections = self.connections  # uvicorn's set of this worker's open connections
            trimmer = _TRIMMERS[id(self.loop)] = MemoryTrimmer(interval, load=lambda: len(connections))
            trimmer.start()
