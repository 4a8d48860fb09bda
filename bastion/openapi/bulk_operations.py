"""Bulk on agent sessions in the OpenAPI document: ``POST /api/v1/ai/batch`` and
``GET /api/v1/ai/batch/{batch_id}/status``, their body and answers (what
``bastion/bulk/service.py`` builds)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components
from bastion.openapi.operation import Operation, json, path

#: An item id or an operation label.
_LABEL = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
_STATUS = Literal["queued", "running", "succeeded", "failed", "cancelled"]
_TAG = "Agent sessions"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BulkItemIn(_Closed):
    id: _LABEL | None = Field(None, description="Unique in the submission; default: the item's index.")
    operation: _LABEL = Field(description="A label: items are grouped and aggregated by it.")
    message: Annotated[str, Field(min_length=1, pattern=r"\S")]


class BulkSubmit(_Closed):
    agent_id: Annotated[str, Field(json_schema_extra={"format": "uuid"})]
    items: list[BulkItemIn] = Field(min_length=1, description="1 to `bulk.max_items` (1,000) items.")


class BulkCounts(_Closed):
    items: int
    succeeded: int
    failed: int
    pending: int


class BulkUsage(_Closed):
    """Tokens; ``input_tokens`` includes the prompt cache's writes and reads."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class BulkOperationTotals(_Closed):
    items: int
    succeeded: int
    failed: int
    pending: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float


class BulkItemError(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class BulkItemResult(_Closed):
    """One item: ``pending``, or its answer (``succeeded``) or error (``failed``)."""

    id: str
    operation: str
    status: Literal["pending", "succeeded", "failed"]
    status_code: int | None = None
    #: The ledger's id of the item's exchange.
    interaction_id: str | None = None
    answer: str | None = None
    usage: BulkUsage | None = None
    cost_usd: float | None = None
    error: BulkItemError | None = None


class BulkBatch(_Closed):
    """A bulk; ``results`` (submission order) only in the status, not in the 202 answer."""

    id: str
    object: Literal["bulk_batch"]
    agent_id: str
    status: _STATUS
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: BulkCounts
    usage: BulkUsage
    cost_usd: float
    operations: dict[str, BulkOperationTotals]
    results: list[BulkItemResult] | None = None


def bulk_components() -> dict[str, Any]:
    return pydantic_components([BulkSubmit, BulkBatch])


_EXAMPLE = {
    "agent_id": "3f1c9a0e-5b7d-4c2a-9e8f-0a1b2c3d4e5f",
    "items": [
        {"id": "t1", "operation": "summarize", "message": "Summarize: the order shipped on Monday."},
        {"id": "t2", "operation": "classify", "message": "Classify: where is my invoice?"},
    ],
}
BULK_OPERATIONS = [
    Operation(
        "post", "/api/v1/ai/batch", "submitBulk", "Run many messages on a session's prompt, in the background",
        _TAG, {202: json("BulkBatch")}, body="BulkSubmit", errors=(400, 404, 410, 413, 429), example=_EXAMPLE,
        description="Needs `models:call` and the caller's active session. The items run as a job (grouped by "
        "operation, the session's vault prompt decrypted once and, for Anthropic models, cached); poll the "
        "status. At most `bulk.per_minute` (5) submissions a minute per user (docs/BULK.md).",
    ),
    Operation(
        "get", "/api/v1/ai/batch/{batch_id}/status", "getBulkStatus", "A bulk's status, aggregates and results",
        _TAG, {200: json("BulkBatch")},
        params=(path("batch_id", {"type": "string", "minLength": 1, "maxLength": 64}),), errors=(404,),
    ),
]  # fmt: skip
