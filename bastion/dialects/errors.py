"""How each dialect spells an error: one renderer per dialect, for JSON bodies and stream events.

Bastion's own routes (admin, sessions) use the OpenAI shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from bastion.errors import BastionError

Dialect = Literal["openai", "anthropic", "bastion"]

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


def openai_error(error: BastionError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code}}


def anthropic_error(error: BastionError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES.get(error.status, "api_error"), "message": error.message},
    }


RENDERERS: dict[Dialect, Callable[[BastionError], dict[str, Any]]] = {
    "openai": openai_error,
    "anthropic": anthropic_error,
    "bastion": openai_error,
}


def dialect_for_path(path: str) -> Dialect:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return "bastion"
