"""The job table's state machine, on SQLite and PostgreSQL: claims, leases and the sweeper,
cancel and retry, listing with tenant scope, and item results written exactly once."""

from __future__ import annotations

import pytest

from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.jobs.model import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, ItemOutcome, JobFilter, NewJob
from bastion.jobs.store import JobStore
from bastion.store.db import Database
from tests.jobs.support import Clock, make_tenants

KINDS = ["k"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: Database, clock: Clock) -> JobStore:
    return JobStore(database, clock)


async def test_a_queued_job_is_claimed_by_exactly_one_worker(store: JobStore) -> None:
    job = await store.create(NewJob("k", payload={"n": 1}), max_attempts=3)
    assert job.state == QUEUED and job.attempts == 0 and job.payload == {"n": 1}
    claimed = await store.claim(job.id, "w1", 30, KINDS)
    assert claimed is not None
    assert claimed.state == RUNNING and claimed.attempts == 1 and claimed.lease_owner == "w1"
    assert claimed.lease_expires_at is not None and claimed.started_at is not None
    assert await store.claim(job.id, "w2", 30, KINDS) is None  # already running
    assert await store.finish(job.id, "w2", SUCCEEDED) is False  # not w2's
    assert await store.finish(job.id, "w1", SUCCEEDED, result={"ok": True}, done=3, total=3) is True
    done = await store.get(job.id)
    assert done.state == SUCCEEDED and done.result == {"ok": True} and done.progress_done == 3
    assert done.lease_owner is None and done.finished_at is not None
    assert await store.claim(job.id, "w1", 30, KINDS) is None  # finished jobs stay finished


async def test_a_worker_claims_only_kinds_it_knows(store: JobStore) -> None:
    job = await store.create(NewJob("other"), max_attempts=3)
    assert await store.claim(job.id, "w1", 30, KINDS) is None
    assert (await store.get(job.id)).state == QUEUED
    assert await store.claimable(KINDS) == []
    assert await store.claimable(["other"]) == [job.id]


async def test_an_expired_lease_is_queued_again_then_fails_after_its_attempts(store: JobStore, clock: Clock) -> None:
    job = await store.create(NewJob("k"), max_attempts=2)
    assert await store.claim(job.id, "w1", 30, KINDS) is not None
    clock.advance(10)
    assert await store.heartbeat(job.id, "w1", 30, done=4, total=10) is True  # renewed: lease to t+40
    clock.advance(29)
    assert (await store.sweep()).requeued == []  # still held
    clock.advance(2)
    sweep = await store.sweep()
    assert sweep.requeued == [job.id] and sweep.failed_kinds == []
    requeued = await store.get(job.id)
    assert requeued.state == QUEUED and requeued.lease_owner is None and requeued.attempts == 1
    assert requeued.progress_done == 4 and "lease expired" in (requeued.error or "")
    # The worker that lost it can neither renew nor finish it.
    assert await store.heartbeat(job.id, "w1", 30) is False
    assert await store.finish(job.id, "w1", SUCCEEDED) is False
    second = await store.claim(job.id, "w2", 30, KINDS)
    assert second is not None and second.attempts == 2
    clock.advance(31)
    sweep = await store.sweep()
    assert sweep.requeued == [] and sweep.failed_kinds == ["k"]
    failed = await store.get(job.id)
    assert failed.state == FAILED and failed.finished_at is not None and "last attempt" in (failed.error or "")


async def test_an_expired_lease_of_a_job_asked_to_stop_ends_cancelled(store: JobStore, clock: Clock) -> None:
    job = await store.create(NewJob("k"), max_attempts=3)
    await store.claim(job.id, "w1", 30, KINDS)
    assert (await store.cancel(job.id)).cancel_requested is True
    clock.advance(31)
    assert (await store.sweep()).cancelled == 1
    assert (await store.get(job.id)).state == CANCELLED


async def test_a_failed_attempt_with_attempts_left_is_queued_again(store: JobStore) -> None:
    job = await store.create(NewJob("k"), max_attempts=3)
    await store.claim(job.id, "w1", 30, KINDS)
    assert await store.release(job.id, "w1", error="ValueError: boom") is True
    again = await store.get(job.id)
    assert again.state == QUEUED and again.attempts == 1 and again.error == "ValueError: boom"
    # A worker that stops gives its attempt back.
    await store.claim(job.id, "w1", 30, KINDS)
    assert await store.release(job.id, "w1", error=None, count_attempt=False) is True
    assert (await store.get(job.id)).attempts == 1


async def test_cancel_queued_at_once_running_on_request_finished_refused(store: JobStore) -> None:
    queued = await store.create(NewJob("k"), max_attempts=3)
    cancelled = await store.cancel(queued.id)
    assert cancelled.state == CANCELLED and cancelled.finished_at is not None
    assert await store.claim(queued.id, "w1", 30, KINDS) is None
    assert (await store.cancel(queued.id)).state == CANCELLED  # idempotent

    running = await store.create(NewJob("k"), max_attempts=3)
    await store.claim(running.id, "w1", 30, KINDS)
    asked = await store.cancel(running.id)
    assert asked.state == RUNNING and asked.cancel_requested is True
    assert await store.watch(running.id, "w1") == (True, True)
    assert await store.finish(running.id, "w1", CANCELLED) is True

    finished = await store.create(NewJob("k"), max_attempts=3)
    await store.claim(finished.id, "w1", 30, KINDS)
    await store.finish(finished.id, "w1", SUCCEEDED)
    with pytest.raises(Conflict):
        await store.cancel(finished.id)


async def test_retry_queues_a_failed_or_cancelled_job_with_fresh_attempts(store: JobStore) -> None:
    job = await store.create(NewJob("k"), max_attempts=1)
    await store.claim(job.id, "w1", 30, KINDS)
    await store.finish(job.id, "w1", FAILED, error="boom")
    retried = await store.retry(job.id)
    assert retried.state == QUEUED and retried.attempts == 0 and retried.error is None
    assert retried.finished_at is None and retried.cancel_requested is False
    with pytest.raises(Conflict):
        await store.retry(job.id)  # queued: nothing to retry
    await store.cancel(job.id)
    assert (await store.retry(job.id)).state == QUEUED
    assert await store.claim(job.id, "w1", 30, KINDS) is not None


async def test_item_results_are_written_exactly_once(store: JobStore) -> None:
    job = await store.create(NewJob("k"), max_attempts=3)
    first = [ItemOutcome("a", {"v": 1}), ItemOutcome("b", error={"message": "bad"})]
    assert await store.write_items(job.id, first) == 2
    again = [ItemOutcome("a", {"v": 2}), ItemOutcome("b", {"v": 2}), ItemOutcome("c", {"v": 2})]
    assert await store.write_items(job.id, again) == 1  # only c is new
    assert await store.done_items(job.id) == {"a", "b", "c"}
    assert await store.item_done(job.id, "a") and not await store.item_done(job.id, "z")
    items = {item.key: item for item in await store.items(job.id)}
    assert items["a"].result == {"v": 1} and items["a"].status == "succeeded"  # the first write stands
    assert items["b"].error == {"message": "bad"} and items["b"].status == "failed"
    assert [item.key for item in await store.items(job.id, after="a")] == ["b", "c"]
    assert await store.item_counts(job.id) == {"succeeded": 2, "failed": 1}


async def test_listing_filters_pages_and_keeps_tenants_apart(database: Database, store: JobStore, clock: Clock) -> None:
    tenants = await make_tenants(database, "acme", "globex")
    made = []
    for i in range(5):
        clock.advance(1)
        tenant = tenants["acme"] if i % 2 == 0 else tenants["globex"]
        made.append(await store.create(NewJob("k" if i < 4 else "other", tenant_id=tenant), max_attempts=3))
    acme = [job.id for job in reversed(made) if job.tenant_id == tenants["acme"]]
    page, cursor = await store.list_jobs(JobFilter(tenant_id=tenants["acme"]), limit=2)
    assert [job.id for job in page] == acme[:2] and cursor is not None
    rest, end = await store.list_jobs(JobFilter(tenant_id=tenants["acme"]), limit=2, cursor=cursor)
    assert [job.id for job in rest] == acme[2:] and end is None
    everyone, _ = await store.list_jobs(JobFilter(), limit=10)
    assert len(everyone) == 5
    only_other, _ = await store.list_jobs(JobFilter(kind="other"), limit=10)
    assert [job.id for job in only_other] == [made[4].id]
    await store.cancel(made[0].id)
    cancelled, _ = await store.list_jobs(JobFilter(state=CANCELLED), limit=10)
    assert [job.id for job in cancelled] == [made[0].id]
    with pytest.raises(NotFound):
        await store.get(made[1].id, tenant_id=tenants["acme"])  # globex's job, seen from acme
    with pytest.raises(NotFound):
        await store.cancel(made[1].id, tenant_id=tenants["acme"])
    assert (await store.get(made[1].id)).tenant_id == tenants["globex"]
    with pytest.raises(InvalidRequest):
        await store.list_jobs(JobFilter(), limit=2, cursor="not a cursor")


async def test_unclaimed_jobs_are_handed_out_again_after_a_while(store: JobStore, clock: Clock) -> None:
    job = await store.create(NewJob("k"), max_attempts=3)
    assert await store.unclaimed(60, KINDS) == []
    clock.advance(61)
    assert await store.unclaimed(60, KINDS) == [job.id]
    assert await store.unclaimed(60, KINDS) == []  # stamped: not again right away
    assert await store.counts() == {("k", QUEUED): 1}
