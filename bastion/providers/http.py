"""What the HTTP-based providers share: a kept-alive connection pool per deployment, SSE line
reading, Retry-After parsing and the mapping of upstream failures to retryable errors."""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from bastion.config.errors import ConfigError
from bastion.config.settings import TimeoutSettings
from bastion.errors import (
    BastionError,
    InvalidRequest,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def resolve_secret(value: str | None, where: str) -> str | None:
    """Resolve ``env:NAME`` / ``os.environ/NAME`` references; literal values pass through."""
    if value is None:
        return None
    for prefix in ("env:", "os.environ/"):
        if value.startswith(prefix):
            name = value[len(prefix) :]
            resolved = os.environ.get(name)
            if not resolved:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return resolved
    return value


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


def new_session(timeouts: TimeoutSettings, limit: int = 0) -> aiohttp.ClientSession:
    """A pooled, kept-alive client session for one upstream."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        json_serialize=lambda obj: orjson.dumps(obj).decode(),
        skip_auto_headers=("User-Agent",),
        auto_decompress=True,
    )


def error_message_from_body(body: bytes) -> str:
    """Best-effort human message from an upstream error body (OpenAI or Anthropic shape)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return text or "no body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return "unrecognised error body"


def error_for_status(status: int, headers: Mapping[str, str], body: bytes, upstream: str) -> BastionError:
    """Map an upstream HTTP error to the error the router and the client see."""
    message = error_message_from_body(body)
    retry_after = parse_retry_after(headers)
    if status in (400, 413, 422):
        # The caller's request was refused on its merits: relay it, never retry.
        return InvalidRequest(f"{upstream} rejected the request: {message}", status=status)
    if status == 429:
        return UpstreamError(
            f"{upstream} is rate limiting: {message}",
            status=429,
            retry_after_s=retry_after,
            upstream_status=status,
            code="upstream_rate_limited",
        )
    if status in (408, 504):
        return UpstreamTimeout(f"{upstream} timed out ({status})", upstream_status=status, retry_after_s=retry_after)
    if status in (503, 529):
        return UpstreamUnavailable(
            f"{upstream} is unavailable: {message}", upstream_status=status, retry_after_s=retry_after
        )
    retryable = status in RETRYABLE_STATUSES
    return UpstreamError(
        f"{upstream} answered {status}: {message}",
        retryable=retryable,
        retry_after_s=retry_after,
        upstream_status=status,
    )


def transport_error(exc: BaseException, upstream: str) -> UpstreamError:
    """Map a client-side transport failure to a retryable upstream error."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{upstream} did not answer in time")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(f"{upstream} sent a truncated response")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamError(f"{upstream} sent an invalid response ({exc.message})")
    return UpstreamConnectionError(f"cannot reach {upstream}: {exc.__class__.__name__}")


def parse_json_body(body: bytes, upstream: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{upstream} sent malformed JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{upstream} sent JSON that is not an object")
    return data


async def iter_sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str | None, bytes]]:
    """Yield ``(event, data)`` for each server-sent event; ``data`` lines of one event are joined."""
    event: str | None = None
    data: list[bytes] = []
    async for raw_line in response.content:
        line = raw_line.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, b"\n".join(data)
            event, data = None, []
            continue
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        # Comments (":") and other fields (id, retry) carry nothing we need.
    if data:
        yield event, b"\n".join(data)
