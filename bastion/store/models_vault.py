"""Prompt vault tables: prompts, their immutable versions and their movable labels.

Nothing here holds prompt text in the clear: a version keeps its system prompt and user template
as AES-256-GCM ciphertexts under a data key of its own, and that data key wrapped by a master key
named by ``key_id`` (see ``bastion.vault.crypto``). Names, descriptions, model preference,
parameters and metadata (declared variable names, tags) are not secret and stay readable, so
listings never need a decryption.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id, utcnow


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("tenant_id", "prompt_id", name="uq_prompts_tenant_prompt_id"),)

    #: Internal key; part of every ciphertext's associated data, so it never changes.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    #: The slug clients use (``"model": "prompt:support-bot"``), unique within the tenant.
    prompt_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class PromptVersion(Base):
    """One immutable version. Rotation rewrites only ``key_id`` and ``wrapped_key``."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("prompt_pk", "version", name="uq_prompt_versions_prompt_version"),
        # `bastion vault status` and rotation look rows up by the master key that wraps them.
        Index("ix_prompt_versions_key_id", "key_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    prompt_pk: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    #: 1, 2, 3 ... per prompt.
    version: Mapped[int] = mapped_column(Integer)
    #: Which master key wraps the data key (a public fingerprint, never the key).
    key_id: Mapped[str] = mapped_column(String(32))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    system_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    template_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: Default request parameters (temperature, max_tokens, ...); the request's own win.
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Not secret: declared variable names, tags, notes. ("metadata" is reserved by SQLAlchemy.)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class PromptLabel(Base):
    """A movable name for a version (``production``, ``staging``, custom)."""

    __tablename__ = "prompt_labels"

    prompt_pk: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="")
