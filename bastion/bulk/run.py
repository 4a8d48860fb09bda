"""Running a bulk submission: the handler of the ``bulk`` job kind.

One attempt: ask the ``BulkRunner`` to prepare the run once (the owner resolved again, the
session checked, its vault prompt decrypted once, one canary for the whole run), then run every
item whose outcome is not stored yet, storing each outcome as a job item keyed by the item's id
the moment it is known. A worker killed mid-run loses only the items in flight: the next attempt
skips every stored item, so each item has exactly one outcome.

Order, for the provider's prompt cache: every item shares one system prefix, so the run's first
item goes alone and writes the cache; then the operation groups run side by side, each group's
first item before the rest, the others started in submission order, ``bulk.concurrency`` items
in flight in all. An item refused by the gateway's rate limits (429 with Retry-After) waits and
is tried again, so a run paces itself to the limits instead of failing its items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import structlog

from bastion.bulk.model import BulkItem, BulkPayload, ItemOutcome, groups
from bastion.config.work_settings import BulkSettings
from bastion.dialects.errors import openai_error
from bastion.errors import BastionError
from bastion.jobs.context import JobContext
from bastion.jobs.model import ItemOutcome as StoredItem

log = structlog.get_logger("bastion.bulk")


class PreparedRun(Protocol):
    """What a runner's ``prepare`` hands back; opaque to the run."""


class BulkRunner(Protocol):
    """Runs a bulk's items through the gateway (``bastion/gateway/bulk_lines.py``)."""

    async def prepare(self, bulk_id: str, payload: BulkPayload) -> PreparedRun:
        """Everything the items share; raises a BastionError when none can run (owner revoked,
        session ended or gone, prompt archived)."""
        ...

    async def run(self, prepared: PreparedRun, item: BulkItem) -> ItemOutcome: ...


class BulkRun:
    def __init__(self, runner: BulkRunner, settings: BulkSettings) -> None:
        self.runner = runner
        self.settings = settings

    async def run(self, job: JobContext) -> dict[str, Any]:
        payload = BulkPayload.from_json(job.payload)
        done = await job.done_items()
        pending = [item for item in payload.items if item.id not in done]
        job.progress(len(done), len(payload.items))
        if pending:
            try:
                prepared = await self.runner.prepare(job.id, payload)
            except BastionError as exc:
                await self._fail_all(job, pending, exc)
            else:
                await self._run_items(job, prepared, pending, done)
        job.check_cancelled()  # stopped early on request: the job ends cancelled with what finished
        counts = await job.item_counts()
        log.info("bulk_ended", bulk_id=job.id, **counts)
        return {"bulk_id": job.id, "items": len(payload.items), **counts}

    async def _fail_all(self, job: JobContext, items: Sequence[BulkItem], exc: BastionError) -> None:
        """No item can run: each gets the reason as its outcome."""
        outcome = ItemOutcome(exc.status, None, error=openai_error(exc)["error"])
        outcomes = [StoredItem(item.id, error=outcome.stored(item.operation)) for item in items]
        await job.write_items(outcomes)
        job.progress(job.done + len(items))

    async def _run_items(self, job: JobContext, prepared: PreparedRun, items: list[BulkItem], done: set[str]) -> None:
        gate = asyncio.Semaphore(self.settings.concurrency)
        grouped = groups(items)
        lead = grouped[0].pop(0)
        await gate.acquire()
        await self._item(job, prepared, lead, gate, done)  # alone: it writes the shared prefix's cache
        async with asyncio.TaskGroup() as tasks:
            for group in grouped:
                if group:
                    tasks.create_task(self._group(job, prepared, group, gate, done))

    async def _group(
        self, job: JobContext, prepared: PreparedRun, items: list[BulkItem], gate: asyncio.Semaphore, done: set[str]
    ) -> None:
        first, *rest = items
        if not await self._admit(job, gate):
            return
        await self._item(job, prepared, first, gate, done)
        async with asyncio.TaskGroup() as tasks:
            for item in rest:
                if not await self._admit(job, gate):
                    return
                tasks.create_task(self._item(job, prepared, item, gate, done))

    @staticmethod
    async def _admit(job: JobContext, gate: asyncio.Semaphore) -> bool:
        """A place in ``gate`` for the next item; False (and no place) once a cancel was asked for."""
        if job.cancel_requested:
            return False
        await gate.acquire()
        if job.cancel_requested:
            gate.release()
            return False
        return True

    async def _item(
        self, job: JobContext, prepared: PreparedRun, item: BulkItem, gate: asyncio.Semaphore, done: set[str]
    ) -> None:
        """Run one item (the caller holds a place in ``gate``; released here) and store its outcome."""
        try:
            outcome = await self.runner.run(prepared, item)
            while outcome.status_code == 429 and outcome.retry_after_s is not None:
                wait = min(outcome.retry_after_s, self.settings.max_rate_limit_wait_s)
                if wait <= 0 or job.cancel_requested:
                    break
                await asyncio.sleep(wait)  # the gateway's limits: pace the run, do not fail it
                outcome = await self.runner.run(prepared, item)
            stored = outcome.stored(item.operation)
            if outcome.ok:
                await job.write_item(item.id, stored)
            else:
                await job.write_item(item.id, error=stored)
            done.add(item.id)
            job.progress(len(done))
        finally:
            gate.release()
