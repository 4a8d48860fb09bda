"""The experiment tables: ``experiments`` (definitions and state), ``experiment_weights`` (the
history of a bandit's traffic weights) and ``feedback`` (client scores of ledger interactions).

The ledger's ``interactions`` rows carry ``experiment_id``, ``experiment_variant`` and
``experiment_unit`` (migration ``0009_experiments``), which the metrics are computed from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id, utcnow


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_experiments_tenant_name"),
        Index("ix_experiments_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    #: ``{"model": alias}`` or ``{"prompt_id": id}``.
    target: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: ``[{name, prompt_version, prompt_label, model, params}, ...]``, the control first.
    variants: Mapped[Any] = mapped_column(JSONType)
    weights: Mapped[Any] = mapped_column(JSONType)
    coverage: Mapped[float] = mapped_column(Float, default=1.0)
    unit: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[Any] = mapped_column(JSONType)
    seed: Mapped[str] = mapped_column(String(128))
    #: draft | running | stopped
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    bandit: Mapped[bool] = mapped_column(Boolean, default=False)
    correction: Mapped[str] = mapped_column(String(32), default="holm")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: Bandit updates so far (the seed of update k is derived from the experiment's seed and k).
    bandit_updates: Mapped[int] = mapped_column(Integer, default=0)


class ExperimentWeights(Base):
    """One bandit update: the weights it set, from which data and seed."""

    __tablename__ = "experiment_weights"

    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    weights: Mapped[Any] = mapped_column(JSONType)
    best_arm_probabilities: Mapped[Any] = mapped_column(JSONType)
    #: Per variant: units and their metric sum, as the update saw them.
    data: Mapped[Any] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(Integer)


class Feedback(Base):
    """A client's score for one interaction (ledger request id): thumbs or a number."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_tenant_interaction", "tenant_id", "interaction_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    interaction_id: Mapped[str] = mapped_column(String(64))
    #: 1.0 / 0.0 for thumbs up / down, else the client's number.
    score: Mapped[float] = mapped_column(Float)
    #: ``thumbs`` or ``score``.
    kind: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Who gave it: the principal's actor label (``key:<id>``, ``user:<id>``).
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
