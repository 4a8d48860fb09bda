"""The ``bulk`` job handler on its own, with a recording runner and an in-memory job context: the
order items run in (the run's first alone, each group's first before its others), the bound on
items in flight, exactly one outcome per item, a run no item can start, rate-limit pacing and a
cancel request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.auth.principal import Identity
from bastion.bulk.model import BulkItem, BulkPayload, ItemOutcome
from bastion.bulk.run import BulkRun
from bastion.config.work_settings import BulkSettings
from bastion.errors import BastionError, NotFound
from bastion.jobs.model import ItemOutcome as StoredItem
from bastion.jobs.model import JobCancelled


class Context:
    """What BulkRun uses of a JobContext, in memory."""

    def __init__(self, payload: BulkPayload, stored: dict[str, Any] | None = None) -> None:
        self.id = "bulk_test"
        self.payload = payload.to_json()
        self.items: dict[str, tuple[str, Any]] = dict(stored or {})
        self.writes: list[str] = []
        self.done = 0
        self.total: int | None = None
        self.cancel_requested = False

    def progress(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelled(self.id)

    async def done_items(self) -> set[str]:
        return set(self.items)

    async def item_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status, _ in self.items.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def write_item(self, key: str, result: Any = None, *, error: Any = None) -> bool:
        return await self.write_items([StoredItem(key, result, error)]) == 1

    async def write_items(self, items: list[StoredItem]) -> int:
        written = 0
        for item in items:
            self.writes.append(item.key)
            if item.key not in self.items:
                self.items[item.key] = (item.status, item.error if item.error is not None else item.result)
                written += 1
        return written


class Runner:
    """Records when each item starts and ends; ``hold`` keeps items in flight a few loop turns."""

    def __init__(self, *, fail_prepare: BastionError | None = None, limited: int = 0) -> None:
        self.events: list[tuple[str, str]] = []
        self.in_flight = 0
        self.most = 0
        self.fail_prepare = fail_prepare
        self.limited = limited
        self.on_end: Any = None

    async def prepare(self, bulk_id: str, payload: BulkPayload) -> object:
        if self.fail_prepare is not None:
            raise self.fail_prepare
        return object()

    async def run(self, prepared: object, item: BulkItem) -> ItemOutcome:
        self.events.append(("start", item.id))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)  # let the others start, if they may
        self.in_flight -= 1
        self.events.append(("end", item.id))
        if self.on_end is not None:
            self.on_end(item)
        if self.limited:
            self.limited -= 1
            return ItemOutcome(429, "req_x", error={"message": "slow down"}, retry_after_s=0.001)
        return ItemOutcome(200, f"req_{item.id}", answer=f"done {item.id}", usage={"input_tokens": 1})


def payload(spec: list[tuple[str, str]]) -> BulkPayload:
    return BulkPayload(
        "3f1c9a0e-5b7d-4c2a-9e8f-0a1b2c3d4e5f",
        "user",
        "u1",
        Identity("t1", "api_key", "k1", "u1"),
        tuple(BulkItem(item_id, operation, f"message {item_id}") for item_id, operation in spec),
    )


SPEC = [("a0", "a"), ("b0", "b"), ("a1", "a"), ("b1", "b"), ("a2", "a"), ("c0", "c"), ("b2", "b"), ("a3", "a")]


def _index(events: list[tuple[str, str]], kind: str, item_id: str) -> int:
    return events.index((kind, item_id))


async def test_the_first_item_runs_alone_then_groups_with_their_first_item_first() -> None:
    runner = Runner()
    ctx = Context(payload(SPEC))
    result = await BulkRun(runner, BulkSettings(concurrency=3)).run(ctx)  # type: ignore[arg-type]
    assert result == {"bulk_id": "bulk_test", "items": 8, "succeeded": 8}
    events = runner.events
    assert events[:2] == [("start", "a0"), ("end", "a0")]  # alone: it writes the prompt cache
    for group in (["b0", "b1", "b2"], ["c0"], ["a1", "a2", "a3"]):
        first, *rest = group
        for other in rest:
            assert _index(events, "end", first) < _index(events, "start", other)
        starts = [_index(events, "start", item_id) for item_id in group]
        assert starts == sorted(starts)  # in submission order
    assert 1 < runner.most <= 3
    assert sorted(ctx.writes) == sorted(item_id for item_id, _ in SPEC)  # one write per item
    assert ctx.done == ctx.total == 8


async def test_stored_items_are_skipped() -> None:
    runner = Runner()
    earlier: dict[str, tuple[str, dict[str, object]]] = {"a0": ("succeeded", {}), "b1": ("failed", {})}
    ctx = Context(payload(SPEC), earlier)
    result = await BulkRun(runner, BulkSettings()).run(ctx)  # type: ignore[arg-type]
    started = [item_id for kind, item_id in runner.events if kind == "start"]
    assert sorted(started) == ["a1", "a2", "a3", "b0", "b2", "c0"]
    assert started[0] == "b0"  # the first item not done goes alone
    assert result["succeeded"] == 7 and result["failed"] == 1


async def test_when_no_item_can_run_each_gets_the_reason() -> None:
    runner = Runner(fail_prepare=NotFound("No session with this agent_id.", param="agent_id"))
    ctx = Context(payload(SPEC[:3]))
    result = await BulkRun(runner, BulkSettings()).run(ctx)  # type: ignore[arg-type]
    assert result["failed"] == 3 and runner.events == []
    status, error = ctx.items["a1"]
    assert status == "failed" and error["status_code"] == 404 and error["operation"] == "a"
    assert error["error"]["param"] == "agent_id"
    assert ctx.done == 3


async def test_a_rate_limited_item_waits_and_is_tried_again() -> None:
    runner = Runner(limited=2)
    ctx = Context(payload(SPEC[:2]))
    result = await BulkRun(runner, BulkSettings(concurrency=1)).run(ctx)  # type: ignore[arg-type]
    assert result["succeeded"] == 2
    assert [item_id for kind, item_id in runner.events if kind == "start"] == ["a0", "a0", "a0", "b0"]


async def test_a_rate_limited_item_fails_when_waiting_is_off() -> None:
    runner = Runner(limited=1)
    ctx = Context(payload(SPEC[:1]))
    result = await BulkRun(runner, BulkSettings(max_rate_limit_wait_s=0)).run(ctx)  # type: ignore[arg-type]
    assert result["failed"] == 1 and ctx.items["a0"][1]["status_code"] == 429


async def test_a_cancel_request_stops_new_items_and_cancels_the_job() -> None:
    runner = Runner()
    ctx = Context(payload(SPEC))

    def cancel_on_the_second_item(item: BulkItem) -> None:
        if len(ctx.items) >= 1:  # the first is stored: this is the second
            ctx.cancel_requested = True

    runner.on_end = cancel_on_the_second_item
    with pytest.raises(JobCancelled):
        await BulkRun(runner, BulkSettings(concurrency=1)).run(ctx)  # type: ignore[arg-type]
    assert len(ctx.items) == 2  # the item in flight finished and was stored; no other started
    assert len([event for event in runner.events if event[0] == "start"]) == 2
