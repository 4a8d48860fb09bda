"""The fake upstream's minimal OpenAI Responses API (``/v1/responses``, ``/v1/responses/input_tokens``).

A Response answers ``answer_text(model)`` as one message item, with usage (``input_tokens`` =
``FAKE_INPUT_TOKENS``, ``output_tokens`` = the answer's word count); streamed, the event sequence
OpenAI sends (created, in_progress, item and part added, text deltas per word, the dones,
completed). The counter answers ``fake_input_tokens(body)``: recognisably not Bastion's estimate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

#: The input tokens every fake Response reports.
FAKE_INPUT_TOKENS = 321


def fake_input_tokens(body: dict[str, Any]) -> int:
    raw = body.get("input")
    items = 1 if isinstance(raw, str) else len(raw or [])
    return 2000 + 10 * items + 100 * len(body.get("tools") or [])


def _message(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response_object(body: dict[str, Any], parts: list[str], status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [_message("".join(parts))] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
        "usage": {
            "input_tokens": FAKE_INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": len(parts),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": FAKE_INPUT_TOKENS + len(parts),
        }
        if done
        else None,
    }


def response_events(body: dict[str, Any], parts: list[str]) -> Iterable[bytes]:
    """The event stream of a Response answering ``parts``."""
    final = response_object(body, parts)
    in_progress = {key: value for key, value in final.items() if key != "usage"}  # no usage until done
    in_progress.update(status="in_progress", output=[])
    item = final["output"][0]
    text = "".join(parts)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": item["id"],
            "output_index": 0,
            "content_index": 0,
            "part": part,
        },
    ]
    for word in parts:
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": word,
                "logprobs": [],
            }
        )
    events += [
        {
            "type": "response.output_text.done",
            "item_id": item["id"],
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": item["id"],
            "output_index": 0,
            "content_index": 0,
            "part": {**part, "text": text},
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
        yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
