"""Server-sent event streams in the document: one schema per event (``data``, ``event``, ``id``,
``retry``), whose JSON ``data`` is described by ``contentMediaType`` / ``contentSchema``, as
OpenAPI 3.2's ``itemSchema`` will (and as Schemathesis already checks each event against)."""

from __future__ import annotations

from typing import Any, get_args

from bastion.openapi.components import ref
from bastion.openapi.model_responses import AnthropicEventType


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"contentMediaType": "application/json", "contentSchema": schema}


def _event(data: dict[str, Any], event: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    properties: dict[str, Any] = {"data": {"type": "string", **data}, "id": {"type": "string"}}
    if event is not None:
        properties["event"] = event
    return {"type": "object", "description": description, "properties": properties, "required": ["data"]}


def event_schema(data: dict[str, Any], event: dict[str, Any] | None, description: str) -> dict[str, Any]:
    """A stream event whose ``data`` is JSON matching ``data`` (and whose ``event`` field, if any, ``event``)."""
    return _event(_json(data), event, description)


def stream_components() -> dict[str, Any]:
    return {
        "OpenAIStreamEvent": _event(
            # The last event is the literal [DONE]; an error after the start is an {"error": ...} event.
            {
                "if": {"const": "[DONE]"},
                "else": _json({"anyOf": [ref("ChatCompletionChunk"), ref("StreamError")]}),
            },
            description="`data: <ChatCompletionChunk>` events, then `data: [DONE]`.",
        ),
        "TextCompletionStreamEvent": _event(
            {
                "if": {"const": "[DONE]"},
                "else": _json({"anyOf": [ref("TextCompletion"), ref("StreamError")]}),
            },
            description="`data: <TextCompletion>` events, then `data: [DONE]`.",
        ),
        "AnthropicStreamEvent": _event(
            _json(ref("AnthropicStreamData")),
            {"enum": list(get_args(AnthropicEventType))},
            description="Anthropic's stream events: `message_start` ... `message_stop`, or `error`.",
        ),
        "SessionStreamEvent": _event(
            _json(ref("SessionStreamData")),
            {"enum": ["delta", "done", "error"]},
            description="`delta` events with the reply's text as it arrives, then `done` (or `error`).",
        ),
    }
