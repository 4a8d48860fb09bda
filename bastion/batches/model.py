"""What a batch is, as plain values: its statuses, limits, and the view the APIs render."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from bastion.auth.principal import Identity

BatchApi = Literal["openai", "anthropic"]

VALIDATING: Final = "validating"
IN_PROGRESS: Final = "in_progress"
FINALIZING: Final = "finalizing"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
EXPIRED: Final = "expired"
CANCELLING: Final = "cancelling"
CANCELLED: Final = "cancelled"
#: Statuses a batch never leaves.
FINAL: Final = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})
#: Statuses in which lines may still be run (or are about to be).
ACTIVE: Final = frozenset({VALIDATING, IN_PROGRESS})

#: The job kind that runs every batch.
JOB_KIND: Final = "batch"

CHAT_URL: Final = "/v1/chat/completions"
EMBEDDINGS_URL: Final = "/v1/embeddings"
MESSAGES_URL: Final = "/v1/messages"
OPENAI_ENDPOINTS: Final = (CHAT_URL, EMBEDDINGS_URL)
COMPLETION_WINDOWS: Final = {"24h": 24 * 3600}

#: OpenAI's metadata rules: up to 16 pairs, keys up to 64 characters, values up to 512.
MAX_METADATA_PAIRS: Final = 16
MAX_METADATA_KEY: Final = 64
MAX_METADATA_VALUE: Final = 512

#: Anthropic's limits: 100,000 requests or 256 MB per batch; ``custom_id`` 1-64 of [A-Za-z0-9_-].
ANTHROPIC_MAX_REQUESTS: Final = 100_000
ANTHROPIC_MAX_BYTES: Final = 256 * 1024 * 1024
ANTHROPIC_EXPIRY_S: Final = 24 * 3600
#: Anthropic keeps results 29 days after creation.
ANTHROPIC_RESULTS_S: Final = 29 * 24 * 3600


def new_batch_id(api: BatchApi) -> str:
    return ("batch_" if api == "openai" else "msgbatch_") + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class RequestCounts:
    total: int
    completed: int
    failed: int
    #: Lines that will not run: the batch was cancelled or expired first.
    unfinished: int = 0

    @property
    def processing(self) -> int:
        return max(0, self.total - self.completed - self.failed - self.unfinished)


@dataclass(frozen=True, slots=True)
class BatchView:
    id: str
    api: BatchApi
    tenant_id: str
    owner: Identity
    owner_kind: str
    owner_id: str
    job_id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any] | None
    status: str
    errors: list[Any] | None
    output_file_id: str | None
    error_file_id: str | None
    results_file_id: str | None
    counts: RequestCounts
    error_text: str | None
    created_at: datetime
    expires_at: datetime
    in_progress_at: datetime | None
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    cancelling_at: datetime | None
    cancelled_at: datetime | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def ended_at(self) -> datetime | None:
        return self.completed_at or self.failed_at or self.expired_at or self.cancelled_at
