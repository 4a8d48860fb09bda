"""A run's progress as a stream of events (``GET /v1/redteam/runs/{id}/events``).

``progress`` events carry ``done``/``total`` and the successes so far per category (read from the
job's items, each judged when its answer arrived); an event's id is its ``done`` count, so a
client that resumes with ``Last-Event-ID: N`` gets only progress beyond N. ``keepalive`` (no
data) when nothing changed for a while; ``done`` with the run (and its summary) ends the stream.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bastion.redteam.run_job import item_key
from bastion.redteam.service import RedteamService, RunView

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: str  # "progress", "keepalive" or "done"
    id: int | None = None
    data: dict[str, Any] | None = None


class CategoryTally:
    """Per category: attempts answered and judged so far, and their successes, read from the
    job's items incrementally. Items (keys ``000000``, ``000001``...) are written out of order, up
    to ``concurrency`` at a time: each read starts after the last key below which every item was
    counted, so a poll reads only the new items and the few in flight around them."""

    def __init__(self, service: RedteamService, job_id: str) -> None:
        self.service = service
        self.job_id = job_id
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: {"attempts": 0, "successes": 0})
        self._seen: set[int] = set()
        self._floor = -1  # every item up to this index is counted

    async def update(self) -> dict[str, dict[str, int]]:
        after: str | None = item_key(self._floor) if self._floor >= 0 else None
        while True:
            page = await self.service.jobs.items(self.job_id, limit=_PAGE, after=after)
            for item in page:
                index = int(item.key)
                if index in self._seen:
                    continue
                self._seen.add(index)
                result = item.result if isinstance(item.result, dict) else None
                if result is not None and result.get("success") is not None and "category" in result:
                    group = self.counts[str(result["category"])]
                    group["attempts"] += 1
                    group["successes"] += int(bool(result["success"]))
            if len(page) < _PAGE:
                break
            after = page[-1].key
        while self._floor + 1 in self._seen:
            self._floor += 1
            self._seen.discard(self._floor)
        return {category: dict(self.counts[category]) for category in sorted(self.counts)}


def _progress(view: RunView, by_category: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "run_id": view.run.id,
        "status": view.status,
        "done": view.done,
        "total": view.total,
        "by_category": by_category,
    }


async def run_events(
    service: RedteamService,
    tenant_id: str,
    run_id: str,
    *,
    last_id: int | None = None,
    poll_s: float = 0.1,
    keepalive_s: float = 15.0,
) -> AsyncIterator[RunEvent]:
    """The run's events until it ends (the run must exist in the tenant: a ``NotFound`` otherwise)."""
    sent = last_id if last_id is not None else -1
    quiet = 0.0
    tally: CategoryTally | None = None
    while True:
        view = await service.view(tenant_id, run_id)
        finished = view.status in ("succeeded", "failed", "cancelled", "imported")
        if view.done > sent and view.run.job_id is not None:
            tally = tally or CategoryTally(service, view.run.job_id)
            yield RunEvent("progress", view.done, _progress(view, await tally.update()))
            sent, quiet = view.done, 0.0
        if finished:
            yield RunEvent("done", None, view.to_json())
            return
        if quiet >= keepalive_s:
            yield RunEvent("keepalive")
            quiet = 0.0
        await asyncio.sleep(poll_s)
        quiet += poll_s
