"""OpenAI's moderation request (``POST /v1/moderations``): which texts to classify.

``input`` is a string, a list of strings (one result each), or a list of multimodal parts (one
result for all of them). Bastion's guard reads text only, so an image part is refused with a 400
that says so, rather than answered as if it had been looked at.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.dialects.openai_schema import parse_object
from bastion.errors import InvalidRequest

#: Inputs of one request (each scanned separately); the body size limit bounds their length.
MAX_INPUTS = 256


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    input: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
        | Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_INPUTS)]
    )
    #: Accepted and echoed nowhere: Bastion's guard answers whatever model is named.
    model: Annotated[str, Field(max_length=256)] | None = None


def moderation_inputs(body: Any) -> list[str | list[dict[str, Any]]]:
    """One entry per result: a text, or the text parts of one multimodal input."""
    request = parse_object(ModerationRequest, body)
    raw = request.input
    if isinstance(raw, str):
        return [raw]
    if all(isinstance(item, str) for item in raw):
        return [item for item in raw if isinstance(item, str)]
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(raw):
        item: dict[str, Any] = part if isinstance(part, dict) else {}
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append({"type": "text", "text": item["text"]})
        elif kind == "image_url":
            raise InvalidRequest(
                f"Invalid request: input.{index}: image inputs are not supported; Bastion's guard "
                "classifies text only. Send the text parts alone.",
                param=f"input.{index}",
            )
        else:
            raise InvalidRequest(
                f"Invalid request: input.{index}: expected a string or a part of type text or image_url",
                param=f"input.{index}",
            )
    if not parts:
        raise InvalidRequest("Invalid request: input must not be empty", param="input")
    return [parts]
