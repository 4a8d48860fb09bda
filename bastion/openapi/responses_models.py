"""The Responses API's answers as pydantic models, for the OpenAPI document (``/v1/responses``).

They describe what ``bastion/responses`` builds; the fields listed are the ones Bastion always
sets, and more are allowed (the full shapes are OpenAI's: ``Response``, ``ResponseStreamEvent``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bastion.openapi.components import pydantic_components, ref
from bastion.openapi.streams import event_schema


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponseOutputItem(_Open):
    """A ``message`` (with ``output_text`` parts) or a ``function_call``."""

    id: str
    type: str
    status: str


class ResponseUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens_details: dict[str, int]


class ResponseObject(_Open):
    """An OpenAI ``Response``: ``completed``, ``incomplete`` (length, content filter) or ``failed``."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[ResponseOutputItem]
    instructions: str | None
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    previous_response_id: str | None
    metadata: dict[str, str]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    temperature: float
    top_p: float
    parallel_tool_calls: bool
    store: bool
    usage: ResponseUsage | None = None


class ResponseDeleted(_Open):
    id: str
    object: Literal["response.deleted"]
    deleted: Literal[True]


class ResponseInputItemList(_Open):
    object: Literal["list"]
    #: Messages, function calls and their outputs, each with its ``id``.
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ResponseInputTokens(_Open):
    object: Literal["response.input_tokens"]
    input_tokens: int


class ResponseStreamData(_Open):
    """One event of a streamed response: ``type`` and ``sequence_number`` always, the rest by type."""

    type: str
    sequence_number: int


def responses_components() -> dict[str, Any]:
    schemas = pydantic_components(
        [ResponseObject, ResponseDeleted, ResponseInputItemList, ResponseInputTokens, ResponseStreamData]
    )
    schemas["ResponsesStreamEvent"] = event_schema(
        ref("ResponseStreamData"),
        {"type": "string"},
        "`event: <type>` / `data: <event>` pairs: `response.created`, `response.in_progress`, output item, "
        "content part, text and function-call argument deltas, then `response.completed` "
        "(`response.incomplete`; on failure `error` and `response.failed`).",
    )
    return schemas
