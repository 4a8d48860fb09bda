"""What a job is, as plain values: its states, its view, an item's outcome, and the errors a
handler may raise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

ITEM_SUCCEEDED = "succeeded"
ITEM_FAILED = "failed"

#: Longest kind name and item key the tables hold.
MAX_KIND = 64
MAX_ITEM_KEY = 256


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


class JobCancelled(Exception):
    """Raised inside a handler (by ``JobContext.check_cancelled``) when the job was asked to stop."""


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to submit."""

    kind: str
    payload: Any = None
    tenant_id: str | None = None
    key_id: str | None = None
    user_id: str | None = None
    #: None: the kind's, else ``jobs.max_attempts``.
    max_attempts: int | None = None
    progress_total: int | None = None
    #: Chosen by the caller when it must record the id before the job can run (None: a new one).
    id: str | None = None


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    kind: str
    tenant_id: str | None
    key_id: str | None
    user_id: str | None
    state: str
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    progress_done: int
    progress_total: int | None
    error: str | None
    result: Any
    result_ref: str | None
    payload: Any
    cancel_requested: bool
    created_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item's result (or error), written at most once per (job, key)."""

    key: str
    result: Any = None
    error: Any = None

    @property
    def status(self) -> str:
        return ITEM_FAILED if self.error is not None else ITEM_SUCCEEDED


@dataclass(frozen=True, slots=True)
class ItemView:
    key: str
    status: str
    result: Any
    error: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobFilter:
    #: None: every tenant's jobs (a platform admin); a tenant id: that tenant's only.
    tenant_id: str | None = None
    state: str | None = None
    kind: str | None = None


@dataclass(slots=True)
class Sweep:
    """What one sweep did: jobs handed out again, and jobs that ran out of attempts (by kind)."""

    requeued: list[str] = field(default_factory=list)
    failed_kinds: list[str] = field(default_factory=list)
    cancelled: int = 0


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_json(job: JobView, *, payload: bool = True) -> dict[str, Any]:
    """The admin API's and the CLI's view of a job."""
    out: dict[str, Any] = {
        "object": "job",
        "id": job.id,
        "kind": job.kind,
        "tenant_id": job.tenant_id,
        "key_id": job.key_id,
        "user_id": job.user_id,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "lease": {
            "owner": job.lease_owner,
            "expires_at": _time(job.lease_expires_at),
            "heartbeat_at": _time(job.heartbeat_at),
        },
        "error": job.error,
        "result": job.result,
        "result_ref": job.result_ref,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
    }
    if payload:
        out["payload"] = job.payload
    return out
