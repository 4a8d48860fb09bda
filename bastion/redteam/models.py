"""The ``redteam_runs`` table: one row per red-team run (executed here, or imported from garak).

The row holds what was asked (target, prompt, guard, seed, selection), the run's summary (the
figures the insights route serves) and its JSON report once finished. A run executed here is a
job of kind ``redteam_run`` (``job_id``): while it is queued or running, its state and progress
are the job's; the attempts' outcomes are the job's items until the report is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id, utcnow


class RedteamRun(Base):
    __tablename__ = "redteam_runs"
    __table_args__ = (Index("ix_redteam_runs_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: ``bastion`` (run here) or ``garak`` (imported from a garak report).
    source: Mapped[str] = mapped_column(String(16), default="bastion")
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: queued | running | succeeded | failed | cancelled (the job's, copied when it ends) | imported
    status: Mapped[str] = mapped_column(String(16))
    #: The model (alias) attacked; for an import, garak's target name.
    target: Mapped[str] = mapped_column(String(256))
    prompt_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    guard: Mapped[bool] = mapped_column(Boolean, default=False)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    #: The request as validated (selection, concurrency, max_tokens).
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: attempts, success_rate, by_category, fragility (``bastion.redteam.summary``).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: Who submitted it: the attempts run as this identity (``auth.Identity``).
    owner_method: Mapped[str] = mapped_column(String(16), default="api_key")
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
