"""Upstream failures mapped to the errors callers see: described, never relayed.

What a caller learns of an upstream's error is the status, the deployment's id, the upstream's
error type and, only when the upstream answered with a JSON error, at most ``EXCERPT_CHARS`` of its
message with every credential removed (``scrub``). HTML pages and other bodies are named, not
shown. The body itself goes only to the DEBUG log, scrubbed the same way (the log's own redaction
then runs over it too).

Statuses keep the meaning clients rely on: 400/413/422 are the caller's request and are relayed
with their status and the upstream's (scrubbed) reason, never retried; 401/403 mean the
deployment's own credentials were refused, which is a gateway fault (502), not the caller's;
429 keeps its status and Retry-After; 408/504 become timeouts, 503/529 "unavailable", the rest
502, with ``retryable`` as the router expects.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import structlog

from bastion.errors import BastionError, InvalidRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bastion.providers.http import parse_retry_after
from bastion.providers.scrub import NO_KNOWN_SECRETS, CredentialScrubber

log = structlog.get_logger("bastion.providers")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
#: The longest excerpt of an upstream's error message a caller sees.
EXCERPT_CHARS = 200
#: How much of a message is scrubbed before the excerpt is cut from it: a credential that starts
#: inside the excerpt is removed whole, not cut into a fragment the scrubber cannot recognise.
_SCAN_CHARS = 2048
#: Bodies larger than this are not parsed (an error object is small; this is some other page).
_MAX_PARSE_BYTES = 1 << 20
#: The most of a body the DEBUG log keeps.
LOG_BODY_CHARS = 16 * 1024

BodyForm = Literal["json", "html", "text", "empty"]

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\s]+")
_HTML = re.compile(r"(?i)<\s*(?:!doctype|html|head|body|title|script|style|div|p|h[1-6]|pre|center)\b")


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What may be told about an upstream's error body."""

    form: BodyForm
    #: The upstream's error type or code, when it is a short identifier free of credentials.
    kind: str | None = None
    #: At most ``EXCERPT_CHARS`` of its message, scrubbed; JSON error objects only.
    excerpt: str | None = None

    def describe(self, status: int | None = None) -> str:
        """``(401 authentication_error): excerpt`` - the status and type in brackets, then the
        excerpt, or what kind of body was withheld."""
        label = " ".join(str(part) for part in (status, self.kind) if part)
        head = f" ({label})" if label else ""
        if self.excerpt:
            return f"{head}: {self.excerpt}"
        if self.form == "html":
            return f"{head}; its HTML error page is not shown"
        if self.form == "text":
            return f"{head}; its non-JSON error body is not shown"
        return head


def read_error_body(
    body: bytes, content_type: str | None, scrubber: CredentialScrubber = NO_KNOWN_SECRETS
) -> ErrorBody:
    """Describe an upstream's error body (OpenAI, Anthropic and similar JSON shapes)."""
    stripped = body.strip()
    if not stripped:
        return ErrorBody("empty")
    if stripped[:1] in (b"{", b"[") and len(stripped) <= _MAX_PARSE_BYTES:
        try:
            return read_error_object(orjson.loads(stripped), scrubber)
        except orjson.JSONDecodeError:
            pass
    if "html" in (content_type or "").lower() or stripped[:1] == b"<":
        return ErrorBody("html")
    return ErrorBody("text")


def read_error_object(data: Any, scrubber: CredentialScrubber = NO_KNOWN_SECRETS) -> ErrorBody:
    """Describe a parsed JSON error: a body, or an error event in a stream."""
    kind, message = _error_fields(data)
    if kind is not None and (not _IDENTIFIER.fullmatch(kind) or scrubber.scrub(kind) != kind):
        kind = None
    return ErrorBody("json", kind, excerpt(message, scrubber) if message else None)


def excerpt(message: str, scrubber: CredentialScrubber = NO_KNOWN_SECRETS) -> str | None:
    """One line of at most ``EXCERPT_CHARS`` characters of ``message``, credentials removed;
    None for a message that is an HTML page."""
    text = _CONTROL.sub(" ", _window(message, _SCAN_CHARS)).strip()
    if not text or _HTML.search(text):
        return None
    text = scrubber.scrub(text)
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text[: EXCERPT_CHARS - 1]
    space = cut.rfind(" ")
    if space >= EXCERPT_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _error_fields(data: Any, depth: int = 0) -> tuple[str | None, str | None]:
    """``(type, message)`` from ``{"error": {"type", "message"}}`` (OpenAI), ``{"type": "error",
    "error": {...}}`` (Anthropic), ``{"error": "text"}``, ``{"message"|"detail": ...}`` and a list
    wrapping one of them (Google)."""
    if depth > 4:
        return None, None
    if isinstance(data, list):
        return _error_fields(data[0], depth + 1) if data else (None, None)
    if not isinstance(data, dict):
        return None, None
    inner = data.get("error")
    if isinstance(inner, dict | list):
        kind, message = _error_fields(inner, depth + 1)
        if kind is not None or message is not None:
            return kind, message
    kind = next((v for v in (data.get("type"), data.get("code"), data.get("status")) if _is_kind(v)), None)
    message = next((v for v in (data.get("message"), data.get("detail"), inner) if isinstance(v, str) and v), None)
    return kind, message


def _is_kind(value: Any) -> bool:
    return isinstance(value, str) and value != "error" and bool(value)


class UpstreamErrors:
    """One deployment's mapping of upstream failures to the errors callers see."""

    def __init__(self, label: str, scrubber: CredentialScrubber = NO_KNOWN_SECRETS) -> None:
        self.label = label
        self.scrubber = scrubber

    def for_status(self, status: int, headers: Mapping[str, str], body: bytes) -> BastionError:
        """Map an upstream HTTP error answer."""
        content_type = headers.get("content-type")
        self._log_body("upstream_error_body", status, content_type, body)
        detail = read_error_body(body, content_type, self.scrubber)
        return error_for_status(status, headers, detail, self.label)

    def reported(self, data: Any, *, mid_stream: bool, retryable: bool = False) -> UpstreamError:
        """An error the upstream reported in a successful answer: a 200 body or a stream event."""
        self._log_body("upstream_error_event", None, "application/json", orjson.dumps(data))
        detail = read_error_object(data, self.scrubber)
        where = " mid-stream" if mid_stream else ""
        return UpstreamError(f"{self.label} reported an error{where}{detail.describe()}", retryable=retryable)

    def _log_body(self, event: str, status: int | None, content_type: str | None, body: bytes) -> None:
        if not log.is_enabled_for(logging.DEBUG):
            return
        log.debug(
            event,
            upstream=self.label,
            status=status,
            content_type=content_type,
            body_bytes=len(body),
            body=loggable_body(body, self.scrubber),
        )


def loggable_body(body: bytes, scrubber: CredentialScrubber) -> str:
    """The body for the DEBUG log: JSON re-encoded (so ``\\u`` escapes cannot hide a key from the
    scrubber), at most ``LOG_BODY_CHARS``, scrubbed."""
    text: str | None = None
    if len(body) <= _MAX_PARSE_BYTES:
        with contextlib.suppress(orjson.JSONDecodeError):
            text = orjson.dumps(orjson.loads(body)).decode()
    if text is None:
        text = body[: LOG_BODY_CHARS + _SCAN_CHARS].decode("utf-8", "replace")
    cut = scrubber.scrub(_window(text, LOG_BODY_CHARS + _SCAN_CHARS))
    return cut if len(cut) <= LOG_BODY_CHARS else cut[:LOG_BODY_CHARS] + "…"


def _window(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, ending before the word the limit cuts: a
    credential is scrubbed whole or not shown, never left as a fragment at the edge."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    blank = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:blank] if blank > 0 else ""


def error_for_status(status: int, headers: Mapping[str, str], detail: ErrorBody, upstream: str) -> BastionError:
    """The error the router and the caller see for an upstream's error status."""
    retry_after = parse_retry_after(headers)
    described = detail.describe(status)
    if status in (400, 413, 422):
        # The caller's request was refused on its merits: relay the reason, never retry.
        return InvalidRequest(f"{upstream} rejected the request{described}", status=status)
    if status in (401, 403):
        # The caller's own credentials were fine; the deployment's were not: a gateway fault.
        return UpstreamError(
            f"{upstream} refused the deployment's credentials{described}",
            retryable=False,
            upstream_status=status,
        )
    if status == 429:
        return UpstreamError(
            f"{upstream} is rate limiting{described}",
            status=429,
            retry_after_s=retry_after,
            upstream_status=status,
            code="upstream_rate_limited",
        )
    if status in (408, 504):
        return UpstreamTimeout(f"{upstream} timed out ({status})", upstream_status=status, retry_after_s=retry_after)
    if status in (503, 529):
        return UpstreamUnavailable(
            f"{upstream} is unavailable{described}", upstream_status=status, retry_after_s=retry_after
        )
    return UpstreamError(
        f"{upstream} answered with an error{described}",
        retryable=status in RETRYABLE_STATUSES,
        retry_after_s=retry_after,
        upstream_status=status,
    )
