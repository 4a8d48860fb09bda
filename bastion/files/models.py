"""The files table: one row per uploaded file (``/v1/files``); the bytes are on disk
(``bastion/files/storage.py``), named by the row's id.

A row belongs to a tenant and to its creator: the user behind the credentials, else the API key
itself (``owner_kind`` / ``owner_id``, as agent sessions are owned). Every read is filtered by both,
except for the tenant's admins, who see every file of their tenant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, utcnow


class StoredFile(Base):
    __tablename__ = "files"
    __table_args__ = (
        # Listings: a tenant's files by creation time (then filtered by owner).
        Index("ix_files_tenant_created", "tenant_id", "created_at"),
        # The expiry sweep.
        Index("ix_files_expires_at", "expires_at"),
    )

    #: The public id, ``file-`` and 32 hex digits.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: "user" or "key": who may see the file besides the tenant's admins.
    owner_kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    filename: Mapped[str] = mapped_column(String(512))
    #: batch or user_data (OpenAI's purposes Bastion serves).
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    #: Requests in a batch input file (its non-blank lines); None for other purposes.
    line_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: SHA-256 of the content, hex.
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="processed")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: None: kept until deleted.
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
