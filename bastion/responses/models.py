"""The stored-responses table: one row per response created with ``store: true``.

A row belongs to a tenant; every read and delete is filtered by it. ``input_items`` is the whole
conversation the response answered (the items of the responses it continued, then its own input),
so ``previous_response_id`` and ``input_items`` never walk a chain. What content a row keeps follows
the tenant's ledger mode (``content_mode``): all of it, redacted, or none (metadata only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, utcnow


class StoredResponse(Base):
    __tablename__ = "stored_responses"
    __table_args__ = (
        Index("ix_stored_responses_tenant_id", "tenant_id"),
        # The retention sweep: rows past their expiry.
        Index("ix_stored_responses_expires_at", "expires_at"),
    )

    #: The public id, ``resp_`` and 48 hex digits.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    model: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    #: full, redacted or metadata (the ledger's modes): what ``input_items`` and ``response`` keep.
    content_mode: Mapped[str] = mapped_column(String(16))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The conversation's input items (Responses item shape, each with an id); None in metadata mode.
    input_items: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)
    #: The Response object as returned (output emptied in metadata mode).
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
