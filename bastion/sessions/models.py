"""Agent session tables: one row per session, one per stored message.

A session belongs to the principal that started it: its user, or (for a key without a user) the
key itself (``owner_kind``/``owner_id``). The prompt version is pinned at start, so a label moved
later does not change a conversation under way. Only user and assistant messages are stored: the
vault's system prompt and rendered template never reach these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id

ACTIVE = "active"
ENDED = "ended"
EXPIRED = "expired"

#: SQLite makes only an ``INTEGER PRIMARY KEY`` an auto-incrementing rowid; PostgreSQL gets a bigint.
_MessageId = BigInteger().with_variant(Integer(), "sqlite")


class AgentSession(Base):
    __tablename__ = "agent_sessions"
    __table_args__ = (
        # "The active sessions of this owner": the cap check and GET sessions/active.
        Index("ix_agent_sessions_owner_status", "tenant_id", "owner_kind", "owner_id", "status"),
        # The cleanup sweep: active sessions past their idle or absolute deadline.
        Index("ix_agent_sessions_status_activity", "status", "last_activity_at"),
        Index("ix_agent_sessions_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: The public id (a UUID in its canonical text form), what clients send as ``agent_id``.
    agent_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(8))  # "user" or "key"
    owner_id: Mapped[str] = mapped_column(String(32))
    #: Who started it (for the record; ownership is owner_kind/owner_id).
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_id: Mapped[str] = mapped_column(String(128))
    prompt_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_version: Mapped[int] = mapped_column(Integer)
    #: The model to call when the prompt version names none (given at start).
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    session_type: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column()
    last_activity_at: Mapped[datetime] = mapped_column()
    #: started_at + sessions.max_life_s (the idle deadline moves; this one does not).
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SessionMessage(Base):
    __tablename__ = "session_messages"
    __table_args__ = (Index("ix_session_messages_session_id", "session_pk", "id"),)

    #: Increasing across processes (a database sequence): history order is insertion order.
    id: Mapped[int] = mapped_column(_MessageId, primary_key=True, autoincrement=True)
    session_pk: Mapped[str] = mapped_column(ForeignKey("agent_sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # "user" or "assistant"
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    #: The gateway request id of the exchange (the ledger's interaction id).
    interaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Prompt tokens this message costs in a chat request (markup included), for windowing.
    tokens: Mapped[int] = mapped_column(Integer, default=0)
