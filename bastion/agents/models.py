"""The agent runs table: one row per run, its owner (the identity it runs as), its plan, input and
budget, and, as it goes, its status, outputs, spending and trace (events with their hash-chain
links). The work itself is a job (``job_id``, kind ``agent_run``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, utcnow


class AgentRun(Base):
    __tablename__ = "agent_runs"
    __table_args__ = (Index("ix_agent_runs_tenant_created", "tenant_id", "created_at"),)

    #: ``run_`` and 32 hex digits.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    owner_method: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The template's name (None: a plan chosen by a planner mode for a task).
    template: Mapped[str | None] = mapped_column(String(128), nullable=True)
    planner: Mapped[str] = mapped_column(String(16))
    #: The task a planner mode plans (None: a template run).
    task: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The plan run; empty until a planner mode has chosen it (with why: ``planner_reason``).
    plan: Mapped[Any] = mapped_column(JSONType)
    planner_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    input: Mapped[Any] = mapped_column(JSONType)
    budget: Mapped[Any] = mapped_column(JSONType)
    #: What the run's arms may touch (collections, executables, paths).
    grants: Mapped[Any] = mapped_column(JSONType)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: queued | running | succeeded | budget_exhausted | blocked | failed | cancelled
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    outputs: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    spent: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    #: The decision trace as far as it went, and each event's hash-chain link.
    trace: Mapped[Any] = mapped_column(JSONType)
    links: Mapped[Any] = mapped_column(JSONType)
    trace_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
