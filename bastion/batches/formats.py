"""How each API spells a batch and its results.

OpenAI: the ``batch`` object (Unix-second timestamps, ``request_counts`` total / completed /
failed), and output and error files of lines ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``. Anthropic: the ``message_batch`` object (RFC 3339 timestamps,
``processing_status`` in_progress / canceling / ended, ``request_counts`` processing / succeeded /
errored / canceled / expired) and result lines ``{"custom_id", "result": {"type", ...}}``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from bastion.batches.model import CANCELLED, CANCELLING, EXPIRED, FINAL, BatchView


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: Fields of OpenAI's batch object left out while they have no value (its OpenAPI document
#: types them without null).
_OPENAI_OPTIONAL = (
    "errors",
    "output_file_id",
    "error_file_id",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def openai_batch(view: BatchView) -> dict[str, Any]:
    counts = view.counts
    out = {
        "id": view.id,
        "object": "batch",
        "endpoint": view.endpoint,
        "errors": {"object": "list", "data": view.errors} if view.errors else None,
        "input_file_id": view.input_file_id,
        "completion_window": view.completion_window,
        "status": view.status,
        "output_file_id": view.output_file_id,
        "error_file_id": view.error_file_id,
        "created_at": _unix(view.created_at),
        "in_progress_at": _unix(view.in_progress_at),
        "expires_at": _unix(view.expires_at),
        "finalizing_at": _unix(view.finalizing_at),
        "completed_at": _unix(view.completed_at),
        "failed_at": _unix(view.failed_at),
        "expired_at": _unix(view.expired_at),
        "cancelling_at": _unix(view.cancelling_at),
        "cancelled_at": _unix(view.cancelled_at),
        "request_counts": {"total": counts.total, "completed": counts.completed, "failed": counts.failed},
        "metadata": view.metadata,
    }
    for name in _OPENAI_OPTIONAL:
        if out[name] is None:
            del out[name]
    return out


def anthropic_processing_status(status: str) -> str:
    if status in FINAL:
        return "ended"
    return "canceling" if status == CANCELLING else "in_progress"


def anthropic_batch(view: BatchView, results_url: str | None) -> dict[str, Any]:
    counts = view.counts
    ended = view.final
    unfinished = counts.unfinished if ended else 0
    return {
        "id": view.id,
        "type": "message_batch",
        "processing_status": anthropic_processing_status(view.status),
        "request_counts": {
            "processing": 0 if ended else counts.processing,
            "succeeded": counts.completed,
            "errored": counts.failed,
            "canceled": unfinished if view.status == CANCELLED else 0,
            "expired": unfinished if view.status == EXPIRED else 0,
        },
        "ended_at": _rfc3339(view.ended_at),
        "created_at": _rfc3339(view.created_at),
        "expires_at": _rfc3339(view.expires_at),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(view.cancelling_at),
        "results_url": results_url if ended and view.results_file_id else None,
    }


def _line_id() -> str:
    return "batch_req_" + uuid.uuid4().hex


def openai_result_line(custom_id: str, status_code: int, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A line of the output file (2xx) or of the error file (an error status)."""
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": None,
    }


_UNRUN = {
    EXPIRED: ("batch_expired", "This request could not be executed before the completion window expired."),
    CANCELLED: ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def openai_unrun_line(custom_id: str, status: str) -> dict[str, Any]:
    """A line of the error file for a request that never ran (the batch expired or was cancelled)."""
    code, message = _UNRUN[status]
    return {"id": _line_id(), "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


def anthropic_result_line(custom_id: str, status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    if 200 <= status_code < 300:
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": body}}
    return {"custom_id": custom_id, "result": {"type": "errored", "error": body}}


def anthropic_unrun_line(custom_id: str, status: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "result": {"type": "expired" if status == EXPIRED else "canceled"}}
