"""The review queue on SQLite and PostgreSQL: prepare from ledger filters, never the same
interaction twice for a purpose, leased claims that concurrent reviewers never share, reviews,
progress, tenant isolation, roles, what a reviewer sees, and the audit trail."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select

from bastion.auth.principal import Role
from bastion.errors import Conflict, NotFound, PermissionDenied
from bastion.review.models import ReviewAssignment, ReviewItem
from bastion.store.db import Database
from bastion.store.models import AuditEvent
from tests.review.support import SCORES, Clock, add_interactions, interaction, service, tenants, who


async def _setup(db: Database, count: int = 6) -> tuple[dict[str, str], list[str]]:
    ids = await tenants(db, "acme", "globex")
    rows = [interaction(ids["acme"], i) for i in range(count)]
    rows.append(interaction(ids["acme"], 100, status=500))  # failed: never a candidate
    rows.append(interaction(ids["acme"], 101, content_mode="metadata", request_messages=None, response_text=None))
    rows.append(interaction(ids["globex"], 200))
    await add_interactions(db, rows)
    return ids, [r.id for r in rows[:count]]


async def test_prepare_takes_the_filter_and_never_queues_an_interaction_twice_per_purpose(database: Database) -> None:
    ids, acme = await _setup(database)
    await add_interactions(database, [interaction(ids["acme"], 50, model="other", flagged=True)])
    reviews = service(database)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    first = await reviews.prepare(admin, {"purpose": "sft", "filter": {"model": "gpt-test", "limit": 4}})
    assert first["item_count"] == 4 and first["counts"]["reviews_needed"] == 8  # 2 reviewers by default
    second = await reviews.prepare(admin, {"purpose": "sft", "filter": {"model": "gpt-test"}})
    assert second["item_count"] == 2  # only the two not queued yet for "sft"
    assert (await reviews.prepare(admin, {"purpose": "sft", "filter": {"model": "gpt-test"}}))["item_count"] == 0
    other = await reviews.prepare(admin, {"purpose": "safety-audit", "filter": {"flagged": True}})
    assert other["item_count"] == 1  # the same ledger, another purpose
    timed = await reviews.prepare(
        admin, {"purpose": "late", "filter": {"from": "2026-11-23T12:03:00Z", "to": "2026-11-23T12:05:00Z"}}
    )
    assert timed["item_count"] == 2
    assert len(acme) == 6


async def test_concurrent_reviewers_never_hold_the_same_slot(database: Database) -> None:
    ids, _ = await _setup(database, count=3)
    reviews = service(database)
    batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {"reviewers_per_item": 2})
    reviewers = [who(ids["acme"], f"r{i}") for i in range(8)]
    claimed = await asyncio.gather(*(reviews.claim(r, batch["id"]) for r in reviewers))
    got = [c for c in claimed if c is not None]
    assert len(got) == 6  # 3 items x 2 slots; two reviewers get nothing
    assert Counter(c["id"] for c in got) == {item: 2 for item in {c["id"] for c in got}}
    async with database.session() as session:
        rows = (
            await session.execute(select(ReviewAssignment.item_id, ReviewAssignment.slot, ReviewAssignment.reviewer))
        ).all()
    assert len({(r.item_id, r.slot) for r in rows}) == len(rows) == 6
    assert len({(r.item_id, r.reviewer) for r in rows}) == 6


async def test_one_slot_and_many_claimers_one_winner_per_item(database: Database) -> None:
    ids, _ = await _setup(database, count=2)
    reviews = service(database)
    batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {"reviewers_per_item": 1})
    for _ in range(3):
        claimed = await asyncio.gather(*(reviews.claim(who(ids["acme"], f"c{i}"), batch["id"]) for i in range(10)))
        winners = [c["id"] for c in claimed if c is not None]
        assert sorted(winners) == sorted(set(winners)) and len(winners) == 2
        async with database.transaction() as session:  # start over for the next round
            for row in await session.scalars(select(ReviewAssignment)):
                await session.delete(row)


async def test_leases_expire_and_no_reviewer_sees_an_item_twice(database: Database) -> None:
    ids, _ = await _setup(database, count=2)
    clock = Clock()
    reviews = service(database, clock)
    batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {"reviewers_per_item": 1, "lease_s": 60})
    ann, bob = who(ids["acme"], "ann"), who(ids["acme"], "bob")
    first = await reviews.claim(ann, batch["id"])
    assert first is not None
    held = await reviews.claim(ann, batch["id"])
    assert held is not None and held["id"] == first["id"]  # the lease she holds
    clock.advance(30)
    second = await reviews.claim(bob, batch["id"])
    assert second is not None and second["id"] != first["id"]
    clock.advance(31)  # ann walked away; bob's lease has 29 s left
    taken = await reviews.claim(who(ids["acme"], "carl"), batch["id"])
    assert taken is not None and taken["id"] == first["id"]
    with pytest.raises(Conflict, match="lease on this item ran out"):
        await reviews.submit(ann, first["id"], {**SCORES, "verdict": "approve"})
    assert await reviews.claim(ann, batch["id"]) is None  # she saw the first; bob holds the second
    await reviews.release(bob, second["id"])
    again = await reviews.claim(bob, batch["id"])
    assert again is None  # released items do not come back to the same reviewer
    last = await reviews.claim(ann, batch["id"])
    assert last is not None and last["id"] == second["id"]


async def test_reviews_progress_and_audit(database: Database) -> None:
    ids, _ = await _setup(database, count=2)
    reviews = service(database)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    batch = await reviews.prepare(admin, {"reviewers_per_item": 2})
    ann, bob = who(ids["acme"], "ann"), who(ids["acme"], "bob")
    item = await reviews.claim(ann, batch["id"])
    assert item is not None
    with pytest.raises(Exception, match="verdict"):
        await reviews.submit(ann, item["id"], {"scores": SCORES})
    review = await reviews.submit(ann, item["id"], {"scores": SCORES, "verdict": "approve", "feedback": "fine"})
    assert review["scores"] == SCORES and review["verdict"] == "approve"
    with pytest.raises(Conflict, match="already"):
        await reviews.submit(ann, item["id"], {"scores": SCORES, "verdict": "approve"})
    with pytest.raises(Conflict, match="Claim the item"):
        await reviews.submit(bob, item["id"], {"scores": SCORES, "verdict": "approve"})
    progress = await reviews.progress(admin, batch["id"])
    assert progress["reviewers"] == [{"reviewer": "user:u-ann", "done": 1, "leased": 0, "abandoned": 0}]
    assert (await reviews.progress(bob, batch["id"]))["reviewers"] == [
        {"reviewer": "user:u-bob", "done": 0, "leased": 0, "abandoned": 0}
    ]
    async with database.session() as session:
        actions = Counter(await session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == ids["acme"])))
    assert actions == {"review.prepare": 1, "review.claim": 1, "review.submit": 1}


async def test_another_tenant_sees_nothing_and_roles_are_checked(database: Database) -> None:
    ids, _ = await _setup(database, count=2)
    reviews = service(database)
    batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {})
    item = await reviews.claim(who(ids["acme"], "ann"), batch["id"])
    assert item is not None
    carl = who(ids["globex"], "carl", Role.ADMIN)
    for call in (
        reviews.get_batch(carl, batch["id"]),
        reviews.claim(carl, batch["id"]),
        reviews.progress(carl, batch["id"]),
        reviews.agreement(carl, batch["id"]),
        reviews.submit(carl, item["id"], {**SCORES, "verdict": "approve"}),
        reviews.item_reviews(carl, item["id"]),
    ):
        with pytest.raises(NotFound):
            await call
    assert await reviews.list_batches(carl) == []
    globex_batch = await reviews.prepare(carl, {})
    assert globex_batch["item_count"] == 1  # its own interaction only
    with pytest.raises(PermissionDenied):
        await reviews.prepare(who(ids["acme"], "rita"), {})  # a reviewer cannot prepare
    with pytest.raises(PermissionDenied):
        await reviews.claim(who(ids["acme"], "vic", Role.VIEWER), batch["id"])
    with pytest.raises(PermissionDenied):
        await reviews.agreement(who(ids["acme"], "rita"), batch["id"])


async def test_a_reviewer_sees_only_what_the_ledger_policy_allows(database: Database) -> None:
    ids = await tenants(database, "acme")
    secret = [{"role": "user", "content": "Mail me at jane.doe@example.com please."}]
    await add_interactions(database, [interaction(ids["acme"], 1, request_messages=secret, response_text="Sure.")])
    reviews = service(database)
    batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {"reviewers_per_item": 3})
    full = await reviews.claim(who(ids["acme"], "ann"), batch["id"])
    assert full is not None and full["interaction"]["messages"] == secret
    assert "key_id" not in full["interaction"] and "cost_usd" not in full["interaction"]
    redacted = await reviews.claim(who(ids["acme"], "bob", ledger_mode="redacted"), batch["id"])
    assert redacted is not None
    assert "jane.doe@example.com" not in str(redacted["interaction"]["messages"])
    assert "[EMAIL_ADDRESS]" in str(redacted["interaction"]["messages"])
    hidden = await reviews.claim(who(ids["acme"], "cy", ledger_mode="metadata"), batch["id"])
    assert hidden is not None and hidden["interaction"]["messages"] is None and hidden["interaction"]["answer"] is None


async def test_the_flagged_interactions_task_queues_each_once_per_tenant(database: Database) -> None:
    ids = await tenants(database, "acme", "globex")
    await add_interactions(
        database,
        [
            interaction(ids["acme"], 1, flagged=True),
            interaction(ids["acme"], 2),
            interaction(ids["acme"], 3, flagged=True),
            interaction(ids["globex"], 4, flagged=True),
        ],
    )
    reviews = service(database, flagged_interval_s=86_400)
    assert await reviews.queue_flagged() == 3
    assert await reviews.queue_flagged() == 0  # nothing new: no empty batch either
    for name, count in (("acme", 2), ("globex", 1)):
        batches = await reviews.list_batches(who(ids[name], "admin", Role.ADMIN))
        assert [(b["purpose"], b["item_count"], b["created_by"]) for b in batches] == [
            ("flagged", count, "system:review-flagged")
        ]
    await add_interactions(database, [interaction(ids["acme"], 5, flagged=True)])
    assert await reviews.queue_flagged() == 1


async def test_an_admin_assigns_a_named_reviewer_to_a_free_slot(database: Database) -> None:
    ids, _ = await _setup(database, count=1)
    reviews = service(database)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    batch = await reviews.prepare(admin, {"reviewers_per_item": 1})
    item = await reviews.claim(who(ids["acme"], "x"), batch["id"])
    assert item is not None
    await reviews.release(who(ids["acme"], "x"), item["id"])
    assigned = await reviews.assign(admin, batch["id"], item["id"], "user:u-ann")
    assert assigned["reviewer"] == "user:u-ann" and assigned["state"] == "leased"
    with pytest.raises(Conflict, match="already"):
        await reviews.assign(admin, batch["id"], item["id"], "user:u-ann")
    with pytest.raises(Conflict, match="no free reviewer slot"):
        await reviews.assign(admin, batch["id"], item["id"], "user:u-bob")
    with pytest.raises(PermissionDenied):
        await reviews.assign(who(ids["acme"], "ann"), batch["id"], item["id"], "user:u-cy")
    review = await reviews.submit(who(ids["acme"], "ann"), item["id"], {"scores": SCORES, "verdict": "approve"})
    assert review["reviewer"] == "user:u-ann"
    async with database.session() as session:
        actions = Counter(await session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == ids["acme"])))
    assert actions["review.assign"] == 1 and actions["review.release"] == 1


async def test_concurrent_prepares_queue_each_interaction_once(database: Database) -> None:
    ids, acme = await _setup(database, count=6)
    reviews = service(database)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    batches = await asyncio.gather(*(reviews.prepare(admin, {"purpose": "sft"}) for _ in range(4)))
    assert sum(b["item_count"] for b in batches) == 6
    async with database.session() as session:
        queued = list(await session.scalars(select(ReviewItem.interaction_id)))
    assert sorted(queued) == sorted(acme)


async def test_prepare_filters_on_the_experiment_arm_the_ledger_recorded(database: Database) -> None:
    ids = await tenants(database, "acme")
    rows = [
        interaction(ids["acme"], i, experiment_id="exp1", experiment_variant="control" if i % 2 else "treatment")
        for i in range(6)
    ]
    rows.append(interaction(ids["acme"], 50, experiment_id="exp2", experiment_variant="treatment"))
    rows.append(interaction(ids["acme"], 51))
    await add_interactions(database, rows)
    reviews, admin = service(database), who(ids["acme"], "admin", Role.ADMIN)
    batch = await reviews.prepare(
        admin, {"purpose": "sft", "filter": {"experiment_id": "exp1", "experiment_arm": "treatment"}}
    )
    assert batch["item_count"] == 3
    assert batch["filter"] == {"experiment_id": "exp1", "experiment_arm": "treatment", "limit": 1000}
    any_experiment = await reviews.prepare(admin, {"purpose": "arm", "filter": {"experiment_arm": "treatment"}})
    assert any_experiment["item_count"] == 4
