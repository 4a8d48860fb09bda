"""The HTTP plumbing under the HTTP-based providers: the upstream client (the lean transport, or
aiohttp behind an HTTP proxy, ``proxied.py``), SSE event reading, Retry-After parsing and the
mapping of transport failures to retryable errors. Error answers are mapped in
``upstream_errors``; the provider base that ties it together is ``http_provider.HTTPProvider``."""

from __future__ import annotations

import email.utils
import time
import urllib.request
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from bastion.config.settings import TimeoutSettings
from bastion.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeout
from bastion.providers.transport import HTTPClient, InvalidResponse, TransportError, TruncatedResponse

#: An event-stream line longer than this is a broken upstream, not a big event: stop buffering.
MAX_SSE_LINE = 16 << 20


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: What a failed upstream call can raise from either client (the aiohttp one translates its own
#: errors into these); ``transport_error`` maps them all.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, TransportError)


class UpstreamResponse(Protocol):
    """An upstream answer whose head arrived: ``transport.Response`` or the aiohttp adapter."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # lower-cased names

    async def read(self) -> bytes: ...  # the whole body, then the connection is released

    async def read_chunk(self) -> bytes: ...  # body bytes as they come; b"" at the end

    def release(self) -> None: ...  # done with it: keep the connection if the body ended

    def close(self) -> None: ...  # drop the connection (cancels the upstream's work)


class UpstreamClient(Protocol):
    async def post(self, path: str, body: bytes) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def proxy_for(url: str) -> str | None:
    """The HTTP proxy the environment sets for ``url`` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, with
    NO_PROXY honoured), as aiohttp's ``trust_env`` would pick it."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]  # not in typeshed
        return None
    return proxy


def make_client(base_url: str, headers: Mapping[str, str], timeouts: TimeoutSettings, limit: int = 0) -> UpstreamClient:
    """The upstream client for one deployment: the lean transport, unless a proxy applies.

    The lean client does not speak to HTTP proxies (CONNECT tunnels, proxy auth); behind one the
    provider keeps aiohttp, which reads the proxy settings from the environment.
    """
    if proxy_for(base_url) is not None:
        from bastion.providers.proxied import AiohttpClient

        return AiohttpClient(base_url, headers, timeouts, limit)
    return HTTPClient(base_url, headers, connect_timeout=timeouts.connect_s, read_timeout=timeouts.read_s, limit=limit)


def transport_error(exc: BaseException, upstream: str) -> UpstreamError:
    """Map a client-side transport failure to a retryable upstream error."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{upstream} did not answer in time")
    if isinstance(exc, TruncatedResponse):
        return UpstreamError(f"{upstream} sent a truncated response")
    if isinstance(exc, InvalidResponse):
        return UpstreamError(f"{upstream} sent an invalid response ({exc})")
    return UpstreamConnectionError(f"cannot reach {upstream}: {exc.__class__.__name__}")


def iter_sse_data(response: UpstreamResponse) -> SSEEvents:
    """``(event, data)`` for each server-sent event of ``response``; ``data`` lines are joined."""
    return SSEEvents(response)


class SSEEvents:
    """The server-sent events of a response, as ``(event, data)``.

    A class rather than an async generator: callers break out of it at ``[DONE]``, and an
    abandoned generator costs a finaliser task per stream. Events may be split across reads or
    packed several to a read; lines end with ``\\n`` or ``\\r\\n`` (a lone ``\\r`` is not a line end).
    """

    __slots__ = ("_buffer", "_data", "_eof", "_event", "_pos", "_response")

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response
        # Parsed lazily, one event per step: a consumer that stops pulling (its client stopped
        # reading) leaves at most one read unparsed here, not thousands of small pending events.
        self._buffer = b""
        self._pos = 0
        self._event: str | None = None
        self._data: list[bytes] = []
        self._eof = False

    def __aiter__(self) -> SSEEvents:
        return self

    async def __anext__(self) -> tuple[str | None, bytes]:
        while True:
            event = self._next_event()
            if event is not None:
                return event
            if self._eof:
                raise StopAsyncIteration
            chunk = await self._response.read_chunk()
            rest = self._buffer[self._pos :] if self._pos < len(self._buffer) else b""
            self._pos = 0
            if chunk:
                self._buffer = rest + chunk if rest else chunk
            else:
                # The end of the stream ends the last line and the last event.
                self._eof = True
                self._buffer = rest + b"\n\n" if rest or self._data else b""

    def _next_event(self) -> tuple[str | None, bytes] | None:
        """The next complete event in the buffer, consuming its lines; ``None`` if there is none yet."""
        buffer, pos = self._buffer, self._pos
        while True:
            end = buffer.find(b"\n", pos)
            if end < 0:
                if len(buffer) - pos > MAX_SSE_LINE:
                    raise InvalidResponse(f"an event-stream line over {MAX_SSE_LINE} bytes")
                self._pos = pos
                return None
            line = buffer[pos : end - 1] if end > pos and buffer[end - 1] == 13 else buffer[pos:end]
            pos = end + 1
            if not line:
                if self._data:
                    event = (self._event, b"\n".join(self._data) if len(self._data) > 1 else self._data[0])
                    self._event, self._data = None, []
                    self._pos = pos
                    return event
                self._event = None
            elif line.startswith(b"data:"):
                self._data.append(line[5:].lstrip(b" "))
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode("utf-8", "replace")
            # Comments (":") and other fields (id, retry) carry nothing we need.
