"""Small helpers the gateway tests share: request bodies, error-shape checks, header checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from anthropic.types import MessageParam
    from openai.types.chat import ChatCompletionMessageParam

#: One user turn, for each SDK's own message type (the same JSON on the wire).
USER_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
ANTHROPIC_MESSAGES: list[MessageParam] = [{"role": "user", "content": "Say hello."}]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
#: Bastion's own time per request must stay small; generous for a loaded 2-core CI machine.
MAX_OVERHEAD_MS = 50.0
#: What no client may ever see in an error body.
LEAKS = ("Traceback", "pydantic", 'File "', "errors.pydantic.dev")


def chat_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER_MESSAGES, **extra}


def anthropic_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 32, "messages": USER_MESSAGES, **extra}


def assert_openai_error(body: Any, *, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` with a non-empty message."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    if param is not None:
        assert error["param"] == param, error
    assert_no_leak(error["message"])
    return error


def assert_anthropic_error(body: Any, error_type: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``."""
    assert isinstance(body, dict) and body.get("type") == "error", body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message"}, error
    assert isinstance(error["message"], str) and error["message"], error
    if error_type is not None:
        assert error["type"] == error_type, error
    assert_no_leak(error["message"])
    return error


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked to the client: {text[:500]}"


def assert_stamped(headers: httpx.Headers | Any, max_overhead_ms: float = MAX_OVERHEAD_MS) -> float:
    """Every response carries a request id and Bastion's overhead; returns the overhead in ms."""
    request_id = headers.get("x-request-id")
    assert request_id and REQUEST_ID.match(request_id), request_id
    overhead = headers.get("x-bastion-overhead-ms")
    assert overhead is not None, dict(headers)
    overhead_ms = float(overhead)
    assert 0.0 <= overhead_ms < max_overhead_ms, f"overhead {overhead_ms} ms"
    return overhead_ms
