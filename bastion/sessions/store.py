"""Database work of agent sessions. Every function takes the time from its caller (the service's
clock), so tests can move time without sleeping."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.sessions.limiter import Owner
from bastion.sessions.models import ACTIVE, EXPIRED, AgentSession, SessionMessage
from bastion.sessions.window import StoredMessage


def _owned_by(owner: Owner) -> Any:
    return (
        (AgentSession.tenant_id == owner.tenant_id)
        & (AgentSession.owner_kind == owner.kind)
        & (AgentSession.owner_id == owner.id)
    )


def _stale(now: datetime, idle_s: float) -> Any:
    """Active sessions past their absolute deadline or idle for too long."""
    return or_(AgentSession.expires_at <= now, AgentSession.last_activity_at <= now - timedelta(seconds=idle_s))


def owner_lock_key(owner: Owner) -> int:
    """A signed 64-bit advisory-lock key for the owner (PostgreSQL's pg_advisory_xact_lock)."""
    digest = hashlib.sha256(f"bastion:sessions:{owner.tenant_id}:{owner.kind}:{owner.id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_owner(session: AsyncSession, owner: Owner, now: datetime, idle_s: float) -> None:
    """Serialise session starts of one owner across processes, for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock on the owner. SQLite: the expiry UPDATE below is
    the transaction's first statement and a write, so it takes the database's single write lock
    (waiting on busy_timeout) before anything is counted; no stale snapshot is ever read.
    Either way the owner's stale sessions are marked expired first, so a count of ``active`` rows
    is a count of live sessions.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": owner_lock_key(owner)})
    await session.execute(
        update(AgentSession)
        .where(_owned_by(owner), AgentSession.status == ACTIVE, _stale(now, idle_s))
        .values(status=EXPIRED, ended_at=now)
    )


async def count_active(session: AsyncSession, owner: Owner) -> int:
    query = select(func.count()).select_from(AgentSession).where(_owned_by(owner), AgentSession.status == ACTIVE)
    return int(await session.scalar(query) or 0)


async def find(session: AsyncSession, agent_id: str) -> AgentSession | None:
    row: AgentSession | None = await session.scalar(select(AgentSession).where(AgentSession.agent_id == agent_id))
    return row


async def list_active(session: AsyncSession, owner: Owner, now: datetime, idle_s: float) -> list[AgentSession]:
    query = (
        select(AgentSession)
        .where(
            _owned_by(owner),
            AgentSession.status == ACTIVE,
            AgentSession.expires_at > now,
            AgentSession.last_activity_at > now - timedelta(seconds=idle_s),
        )
        .order_by(AgentSession.started_at.desc(), AgentSession.id)
    )
    return list((await session.execute(query)).scalars().all())


async def mark(session: AsyncSession, pk: str, status: str, now: datetime) -> None:
    """Move an active session to ``status`` (ended or expired); a no-op if it is not active any more."""
    await session.execute(
        update(AgentSession)
        .where(AgentSession.id == pk, AgentSession.status == ACTIVE)
        .values(status=status, ended_at=now)
    )


async def expire_stale(session: AsyncSession, now: datetime, idle_s: float) -> int:
    """The cleanup sweep: one idempotent UPDATE, safe to run from every process at once."""
    result = await session.execute(
        update(AgentSession)
        .where(AgentSession.status == ACTIVE, _stale(now, idle_s))
        .values(status=EXPIRED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def window_messages(session: AsyncSession, pk: str, budget: int, page: int = 128) -> list[StoredMessage]:
    """The newest messages whose tokens add up to at most ``budget``, newest first.

    Read a page at a time from the newest, stopping once the budget is spent: a chat reads about
    what it sends, however long the session's history has grown.
    """
    kept: list[StoredMessage] = []
    used = 0
    before: int | None = None
    while True:
        query = select(SessionMessage.id, SessionMessage.role, SessionMessage.content, SessionMessage.tokens).where(
            SessionMessage.session_pk == pk
        )
        if before is not None:
            query = query.where(SessionMessage.id < before)
        rows = (await session.execute(query.order_by(SessionMessage.id.desc()).limit(page))).all()
        for message_id, role, content, tokens in rows:
            if used + tokens > budget:
                return kept
            used += tokens
            kept.append(StoredMessage(role, content, tokens))
            before = message_id
        if len(rows) < page:
            return kept


async def history_page(session: AsyncSession, pk: str, after: int | None, limit: int) -> list[SessionMessage]:
    query = select(SessionMessage).where(SessionMessage.session_pk == pk)
    if after is not None:
        query = query.where(SessionMessage.id > after)
    rows = await session.execute(query.order_by(SessionMessage.id).limit(limit))
    return list(rows.scalars().all())


async def append_exchange(
    session: AsyncSession,
    pk: str,
    messages: list[tuple[str, str, int]],
    interaction_id: str,
    now: datetime,
) -> None:
    """Store a finished exchange (user message, assistant reply) and note the activity.

    The session row is updated first: on PostgreSQL that row lock makes concurrent exchanges of one
    session store their messages one pair after the other.
    """
    await session.execute(
        update(AgentSession)
        .where(AgentSession.id == pk)
        .values(last_activity_at=now, message_count=AgentSession.message_count + len(messages))
    )
    # A Core insert (no ORM objects to track): the exchange is written, never read back here.
    await session.execute(
        insert(SessionMessage),
        [
            {
                "session_pk": pk,
                "role": role,
                "content": content,
                "tokens": tokens,
                "interaction_id": interaction_id,
                "created_at": now,
            }
            for role, content, tokens in messages
        ],
    )
