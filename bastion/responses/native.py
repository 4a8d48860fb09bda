"""What the Responses route does with an answer a native upstream gave (``responses: native``).

The upstream's Response and events are relayed as it sent them, with two exceptions: a complete
answer the output guard changed (withheld or redacted) carries the guarded output instead, and a
stream the gateway ends with an error (the upstream failed mid-stream, scrubbed) ends with an
``error`` event and ``response.failed``, as on the translated path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from bastion.dialects.extension import FIELD
from bastion.errors import BastionError
from bastion.providers.openai_responses import NATIVE_EVENT, chat_body
from bastion.responses.output import failed, output_from_completion

Event = dict[str, Any]


def passthrough_body(body: dict[str, Any]) -> dict[str, Any]:
    """The client's body as the upstream gets it: Bastion's own field never goes upstream."""
    return {key: value for key, value in body.items() if key != FIELD}


def _answer(completion: dict[str, Any]) -> tuple[Any, Any]:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return message.get("content"), message.get("tool_calls")


def guarded(native: dict[str, Any], completion: dict[str, Any]) -> dict[str, Any]:
    """``native`` (the upstream's Response) with the output guard's verdict applied: unchanged
    unless the guard changed the chat-shaped answer it scanned (``completion``)."""
    if _answer(chat_body(native)) == _answer(completion):
        return native
    output, finish_reason = output_from_completion(completion)
    patched = {**native, "output": output}
    if finish_reason == "content_filter":
        patched["status"] = "incomplete"
        patched["incomplete_details"] = {"reason": "content_filter"}
    return patched


def is_native_stream(first: dict[str, Any]) -> bool:
    return NATIVE_EVENT in first


async def relay_events(chunks: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[Event, None]:
    """The upstream's events, in order; a failure after the first becomes ``error`` and
    ``response.failed`` (numbered on from the last event relayed)."""
    sequence = -1
    response: dict[str, Any] = {}
    try:
        async for chunk in chunks:
            event: Event = chunk[NATIVE_EVENT]
            sequence = int(event.get("sequence_number", sequence + 1))
            if isinstance(event.get("response"), dict):
                response = event["response"]
            yield event
    except BastionError as exc:
        code = exc.code or exc.error_type
        yield {
            "type": "error",
            "code": code,
            "message": exc.message,
            "param": exc.param,
            "sequence_number": sequence + 1,
        }
        if response:
            failed_response = failed({**response, "output": list(response.get("output") or [])}, exc.message)
            yield {"type": "response.failed", "response": failed_response, "sequence_number": sequence + 2}
