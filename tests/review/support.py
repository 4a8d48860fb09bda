"""Builders of the review suite: tenants, principals, ledger rows written straight to the table,
and a clock moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.auth.principal import Principal, Role
from bastion.config.work_settings import ReviewSettings
from bastion.review.service import ReviewService
from bastion.store.db import Database
from bastion.store.models import Interaction, Tenant

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(days=2)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def tenants(db: Database, *names: str) -> dict[str, str]:
    async with db.transaction() as session:
        rows = {name: Tenant(name=name) for name in names}
        session.add_all(rows.values())
    return {name: row.id for name, row in rows.items()}


def who(tenant_id: str, name: str, role: Role = Role.REVIEWER, **settings: Any) -> Principal:
    return Principal(
        tenant_id=tenant_id,
        tenant_name="t",
        role=role,
        key_id=f"k-{name}",
        user_id=f"u-{name}",
        tenant_settings=settings,
    )


def interaction(tenant_id: str, i: int, **overrides: Any) -> Interaction:
    values: dict[str, Any] = {
        "id": f"req-{tenant_id[:6]}-{i:05d}",
        "tenant_id": tenant_id,
        "key_id": "key-a",
        "user_id": None,
        "created_at": T0 + timedelta(minutes=i),
        "endpoint": "chat",
        "dialect": "openai",
        "model": "gpt-test",
        "status": 200,
        "content_mode": "full",
        "request_messages": [{"role": "user", "content": f"Question {i}?"}],
        "response_text": f"Answer {i}.",
        "flagged": False,
    }
    values.update(overrides)
    return Interaction(**values)


async def add_interactions(db: Database, rows: list[Interaction]) -> None:
    async with db.transaction() as session:
        session.add_all(rows)


def service(db: Database, clock: Clock | None = None, **settings: Any) -> ReviewService:
    return ReviewService(db, ReviewSettings(**settings), clock=clock or Clock())


SCORES = {"relevance": 4, "accuracy": 4, "helpfulness": 4, "safety": 5, "coherence": 4, "completeness": 4}


class FakeVault:
    """The vault's plaintext reads, recorded."""

    def __init__(self, prompts: dict[tuple[str, int], str]) -> None:
        self.prompts = prompts
        self.reads: list[tuple[str, str, int, str]] = []

    async def __call__(self, tenant_id: str, prompt_id: str, version: int, *, actor: str) -> str | None:
        self.reads.append((tenant_id, prompt_id, version, actor))
        return self.prompts.get((prompt_id, version))


async def review_all(reviews: ReviewService, batch_id: str, reviewers: list[Principal], decide: Any) -> None:
    """Every reviewer claims and reviews until nothing is left; ``decide(reviewer_index, item)``
    gives the review body."""
    for index, reviewer in enumerate(reviewers):
        while (item := await reviews.claim(reviewer, batch_id)) is not None:
            await reviews.submit(reviewer, item["id"], decide(index, item))
