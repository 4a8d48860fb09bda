"""The batch APIs in the OpenAPI document: OpenAI's ``/v1/batches`` and Anthropic's
``/v1/messages/batches``, their request bodies and answers (what ``bastion/batches/formats.py``
builds, in the providers' shapes: OpenAI's ``Batch``, Anthropic's ``MessageBatch``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components
from bastion.openapi.operation import CHAT_MODEL, Operation, json, path, query


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(description="A file uploaded with purpose `batch`.")
    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = Field(None, description="Up to 16 pairs; keys <= 64, values <= 512 characters.")
    output_expires_after: dict[str, Any] | None = None


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None
    line: int | None


class BatchErrors(BaseModel):
    object: Literal["list"]
    data: list[BatchError]


class BatchObject(BaseModel):
    """An OpenAI batch (timestamps in Unix seconds; a field without a value is left out)."""

    id: str
    object: Literal["batch"]
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: Literal[
        "validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"
    ]
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None


class BatchList(BaseModel):
    object: Literal["list"]
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class MessageBatchCreate(BaseModel):
    requests: list[dict[str, Any]] = Field(
        description="1 to 100,000 of {custom_id (1-64 of [A-Za-z0-9_-], unique), params (a Messages request)}."
    )


class MessageBatchCounts(BaseModel):
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int


class MessageBatch(BaseModel):
    """An Anthropic message batch (timestamps in RFC 3339)."""

    id: str
    type: Literal["message_batch"]
    processing_status: Literal["in_progress", "canceling", "ended"]
    request_counts: MessageBatchCounts
    ended_at: str | None
    created_at: str
    expires_at: str
    archived_at: str | None
    cancel_initiated_at: str | None
    results_url: str | None


class MessageBatchList(BaseModel):
    data: list[MessageBatch]
    has_more: bool
    first_id: str | None
    last_id: str | None


class MessageBatchDeleted(BaseModel):
    id: str
    type: Literal["message_batch_deleted"]


def batch_components() -> dict[str, Any]:
    schemas = pydantic_components([BatchCreate, BatchObject, BatchList])
    schemas.update(pydantic_components([MessageBatchCreate, MessageBatch, MessageBatchList, MessageBatchDeleted]))
    schemas["MessageBatchResults"] = {
        "type": "string",
        "description": "JSONL: one {custom_id, result: {type: succeeded|errored|canceled|expired, ...}} per request.",
    }
    return schemas


BATCH_ID = path("batch_id", {"type": "string", "minLength": 1, "maxLength": 80})
_LINE = {"model": CHAT_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}
BATCH_OPERATIONS = [
    Operation(
        "post", "/v1/batches", "createBatch", "Create a batch (OpenAI Batch API)", "OpenAI", {200: json("BatchObject")},
        body="BatchCreate", errors=(400,), dialect="openai",
        description="Needs `models:call`. Runs every line of the input file through the pipeline as the caller, "
        "in the background; poll it, then read `output_file_id` and `error_file_id` (docs/BATCHES.md).",
    ),
    Operation(
        "get", "/v1/batches", "listBatches", "The caller's batches", "OpenAI", {200: json("BatchList")},
        params=(
            query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 20)."),
            query("after", {"type": "string"}, "A batch id: the page starts after it."),
        ),
        errors=(400,), dialect="openai",
    ),
    Operation(
        "get", "/v1/batches/{batch_id}", "retrieveBatch", "One batch", "OpenAI", {200: json("BatchObject")},
        params=(BATCH_ID,), errors=(404,), dialect="openai",
    ),
    Operation(
        "post", "/v1/batches/{batch_id}/cancel", "cancelBatch", "Cancel a batch", "OpenAI",
        {200: json("BatchObject")}, params=(BATCH_ID,), errors=(404, 409), dialect="openai",
        description="Lines in flight finish; no new line starts. The batch ends `cancelled` with what finished.",
    ),
    Operation(
        "post", "/v1/messages/batches", "createMessageBatch", "Create a message batch (Anthropic)", "Anthropic",
        {200: json("MessageBatch")}, body="MessageBatchCreate", errors=(400, 413), dialect="anthropic",
        example={"requests": [{"custom_id": "first", "params": _LINE}]},
    ),
    Operation(
        "get", "/v1/messages/batches", "listMessageBatches", "The caller's message batches", "Anthropic",
        {200: json("MessageBatchList")},
        params=(
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (default 20)."),
            query("after_id", {"type": "string"}, "Older than this batch."),
            query("before_id", {"type": "string"}, "Newer than this batch."),
        ),
        errors=(400,), dialect="anthropic",
    ),
    Operation(
        "get", "/v1/messages/batches/{batch_id}", "retrieveMessageBatch", "One message batch", "Anthropic",
        {200: json("MessageBatch")}, params=(BATCH_ID,), errors=(404,), dialect="anthropic",
    ),
    Operation(
        "delete", "/v1/messages/batches/{batch_id}", "deleteMessageBatch", "Delete an ended message batch",
        "Anthropic", {200: json("MessageBatchDeleted")}, params=(BATCH_ID,), errors=(404, 409), dialect="anthropic",
    ),
    Operation(
        "post", "/v1/messages/batches/{batch_id}/cancel", "cancelMessageBatch", "Cancel a message batch",
        "Anthropic", {200: json("MessageBatch")}, params=(BATCH_ID,), errors=(404, 409), dialect="anthropic",
    ),
    Operation(
        "get", "/v1/messages/batches/{batch_id}/results", "messageBatchResults", "A message batch's results",
        "Anthropic", {200: {"application/x-jsonl": {"$ref": "#/components/schemas/MessageBatchResults"}}},
        params=(BATCH_ID,), errors=(404, 409), dialect="anthropic",
    ),
]  # fmt: skip
