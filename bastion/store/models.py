"""Relational schema (SQLAlchemy 2). Changes go through Alembic migrations in ``migrations/``.

Identifiers are 32-character hex strings made by the application (portable across SQLite and
PostgreSQL, and known before the insert). Times are UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Per-tenant policy: ledger_mode, limits, budgets, guard policy. Validated by the services.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: The first characters of the key, shown in listings so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    #: SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: May manage every tenant (create tenants, their first keys). Only the CLI grants it.
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: Per-key limits and budgets (rpm, tpm, daily_usd, monthly_usd, max_request_usd).
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Interaction(Base):
    """One request through the gateway: the ledger."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_tenant_time", "tenant_id", "created_at"),
        Index("ix_interactions_tenant_key_time", "tenant_id", "key_id", "created_at"),
        Index("ix_interactions_tenant_user_time", "tenant_id", "user_id", "created_at"),
        Index("ix_interactions_tenant_model_time", "tenant_id", "model", "created_at"),
        Index("ix_interactions_tenant_status_time", "tenant_id", "status", "created_at"),
        Index("ix_interactions_tenant_experiment", "tenant_id", "experiment_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the request id
    tenant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(32))
    dialect: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    deployment: Mapped[str | None] = mapped_column(String(256), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    #: Prompt tokens read from the provider's prompt cache (OpenAI's cached_tokens, Anthropic's
    #: cache_read_input_tokens); writes to it (cache_creation_input_tokens), and of those the
    #: ones with the 1-hour TTL. All three are part of prompt_tokens.
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_1h_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    overhead_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    #: Content, subject to the tenant's ledger mode (full / redacted / metadata).
    content_mode: Mapped[str] = mapped_column(String(16), default="full")
    request_messages: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    response_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Prompt vault and agent session references, guard verdicts, experiment arm, ...
    prompt_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    guard: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: The experiment arm the request was assigned to, and the unit (user, session, key or
    #: request id) it was assigned by (docs/EXPERIMENTS.md).
    experiment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    experiment_variant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    experiment_unit: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: When the row reached the database (its default, never a value the writer sends): what the
    #: insights roll-up's watermark follows, since ``created_at`` is the request's arrival.
    written_at: Mapped[datetime | None] = mapped_column(
        nullable=True, server_default=text("CURRENT_TIMESTAMP"), index=True
    )


class AuditEvent(Base):
    """Security-relevant actions: key and user changes, prompt plaintext reads, rotations."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_time", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
