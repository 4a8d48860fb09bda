"""The batches table: one row per OpenAI batch (``/v1/batches``) or Anthropic message batch
(``/v1/messages/batches``). The work itself is a job (``job_id``); each line's outcome is one of
the job's items, keyed by its ``custom_id``, so a line's result is stored exactly once.

A row belongs to its tenant and its creator (``owner_kind`` / ``owner_id``, as files are owned);
``owner_method`` with ``key_id`` / ``user_id`` is the identity the lines run as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, utcnow


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_created", "tenant_id", "created_at"),)

    #: ``batch_`` (OpenAI) or ``msgbatch_`` (Anthropic) and 32 hex digits.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: "openai" or "anthropic": which API created it, and so how it is shown.
    api: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[str] = mapped_column(String(32))
    owner_method: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16), default="24h")
    batch_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
    #: validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled.
    status: Mapped[str] = mapped_column(String(16))
    #: Why validation failed: OpenAI's ``errors.data`` entries.
    errors: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)
    output_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Anthropic's results, in its own line format (a file of the owner's).
    results_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_total: Mapped[int] = mapped_column(Integer, default=0)
    #: Final counts (while running they come from the job's items).
    request_completed: Mapped[int] = mapped_column(Integer, default=0)
    request_failed: Mapped[int] = mapped_column(Integer, default=0)
    request_unfinished: Mapped[int] = mapped_column(Integer, default=0)
    error_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    in_progress_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finalizing_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
