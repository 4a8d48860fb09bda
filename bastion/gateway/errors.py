"""Render any failure as the caller's dialect's error JSON: never a traceback, never pydantic text."""

from __future__ import annotations

import math
from typing import Any

import orjson

from bastion.errors import BastionError
from bastion.gateway.context import Dialect

# Anthropic's error vocabulary, by status (https://docs.anthropic.com/en/api/errors).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


def dialect_for_path(path: str) -> Dialect:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return "bastion"


def error_payload(error: BastionError, dialect: Dialect) -> dict[str, Any]:
    if dialect == "anthropic":
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(error.status, "api_error"), "message": error.message},
        }
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_body(error: BastionError, dialect: Dialect) -> bytes:
    return orjson.dumps(error_payload(error, dialect))


def error_headers(error: BastionError, request_id: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    for name, value in error.headers.items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    retry_after = getattr(error, "retry_after_s", None)
    if (
        retry_after is not None
        and error.status in (429, 503)
        and "retry-after" not in {k.lower() for k in error.headers}
    ):
        # An upstream's Retry-After (relayed 429 or 503) tells the client when to come back.
        headers.append((b"retry-after", str(math.ceil(retry_after)).encode("latin-1")))
    if request_id and error.status >= 400:
        # Anthropic clients look for their own request-id header too.
        headers.append((b"request-id", request_id.encode("latin-1")))
    return headers
