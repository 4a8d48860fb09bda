"""What a handler gets: the job, progress reporting, the lease's heartbeat, cancellation checks,
and the item results (which items are done; idempotent writes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.jobs.model import MAX_ITEM_KEY, ItemOutcome, JobCancelled, JobView
from bastion.jobs.store import JobStore


class JobContext:
    def __init__(self, job: JobView, store: JobStore, owner: str, lease_s: float) -> None:
        self.job = job
        self.store = store
        self.owner = owner
        self.lease_s = lease_s
        self.done = job.progress_done
        self.total = job.progress_total
        #: Set by the worker when the job was asked to stop; ``check_cancelled`` raises then.
        self.cancel_requested = False
        #: A reference to where the job's result lives (a file, an object store path), if not in ``result``.
        self.result_ref: str | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def payload(self) -> Any:
        return self.job.payload

    @property
    def attempt(self) -> int:
        """1 on the first attempt."""
        return self.job.attempts

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress; it is stored with the next heartbeat and when the job ends."""
        self.done = max(0, int(done))
        if total is not None:
            self.total = max(0, int(total))

    async def heartbeat(self) -> bool:
        """Renew the lease now (the worker also does so on its own); False: the job is lost."""
        return await self.store.heartbeat(self.job.id, self.owner, self.lease_s, self.done, self.total)

    def check_cancelled(self) -> None:
        """Between items: stop here (raise ``JobCancelled``) if the job was asked to stop."""
        if self.cancel_requested:
            raise JobCancelled(self.job.id)

    async def done_items(self) -> set[str]:
        """Keys of the items whose outcome is stored (by this attempt or an earlier one)."""
        return await self.store.done_items(self.job.id)

    async def item_counts(self) -> dict[str, int]:
        """Stored items by status (``succeeded``, ``failed``)."""
        return await self.store.item_counts(self.job.id)

    async def item_done(self, key: str) -> bool:
        return await self.store.item_done(self.job.id, key)

    async def write_item(self, key: str, result: Any = None, *, error: Any = None) -> bool:
        """Store an item's outcome unless one is stored already; True if this call stored it."""
        return await self.write_items([ItemOutcome(key, result, error)]) == 1

    async def write_items(self, items: Sequence[ItemOutcome]) -> int:
        for item in items:
            if not item.key or len(item.key) > MAX_ITEM_KEY:
                raise ValueError(f"an item key is 1 to {MAX_ITEM_KEY} characters: {item.key!r}")
        return await self.store.write_items(self.job.id, items)
