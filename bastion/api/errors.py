"""Errors as HTTP responses: the dialect's JSON body and the headers that go with it.

The one place a failure becomes a response is the error boundary in ``bastion/api/app.py``;
endpoints raise ``BastionError`` and never render errors themselves.
"""

from __future__ import annotations

import math

import orjson

from bastion.dialects.errors import RENDERERS, Dialect
from bastion.errors import BastionError


def error_body(error: BastionError, dialect: Dialect) -> bytes:
    return orjson.dumps(RENDERERS[dialect](error))


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
