"""The ``insights_rollup`` job kind and what submits it: a loop in every process that submits a
roll-up job every ``insights.interval_s`` when ledger rows were written since the watermark (or
retention is due) and none is already queued or running. The job runs
one increment (``Rollup.run``), the drift sampler when it is on, and retention, then announces the
changed buckets on the event stream; a lease in ``insight_state`` keeps two processes' jobs from
rolling up at once."""

from __future__ import annotations

from typing import Any, Final

from bastion.config.insights_settings import InsightsSettings
from bastion.insights.drift import DriftSampler
from bastion.insights.events import EventPublisher
from bastion.insights.live import publish_rollup
from bastion.insights.rollup import Rollup
from bastion.jobs.context import JobContext
from bastion.jobs.model import QUEUED, RUNNING, JobFilter, NewJob
from bastion.jobs.service import JobService
from bastion.store.periodic import PeriodicSweep

JOB_KIND: Final = "insights_rollup"


class RollupJob:
    def __init__(self, rollup: Rollup, drift: DriftSampler | None = None, events: EventPublisher | None = None) -> None:
        self.rollup = rollup
        self.drift = drift
        #: Where each run's changed buckets are announced (the dashboard's stream); None: nowhere.
        self.events = events

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        owner = ctx.id
        if not await self.rollup.claim(owner):
            return {"skipped": "another roll-up holds the lease"}
        try:
            result = await self.rollup.run()
            out = result.to_json()
            if self.drift is not None:
                out["drift_samples"] = await self.drift.recompute(result.touched)
            out["pruned"] = await self.rollup.prune()
            if self.events is not None and result.touched:
                out["events"] = await publish_rollup(self.rollup.db, self.events, result.touched)
            return out
        finally:
            await self.rollup.release(owner)


class RollupScheduler:
    """Submits the roll-up job every ``insights.interval_s`` (a lifecycle of the gateway)."""

    def __init__(self, jobs: JobService, settings: InsightsSettings, rollup: Rollup) -> None:
        self.jobs = jobs
        self.settings = settings
        self.rollup = rollup
        self._loop = PeriodicSweep(
            "insights_rollup_submit", lambda: settings.interval_s, self._tick, "bastion.insights"
        )

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def submit_if_idle(self) -> bool:
        """Submit a roll-up job when there is something to roll up (or prune) and none is queued
        or running; True if one was submitted. An idle gateway creates no job rows."""
        if not await self.rollup.due():
            return False
        for state in (QUEUED, RUNNING):
            pending, _ = await self.jobs.list_jobs(JobFilter(state=state, kind=JOB_KIND), 1)
            if pending:
                return False
        await self.jobs.submit(NewJob(kind=JOB_KIND, max_attempts=1))
        return True

    async def _tick(self) -> int:
        await self.submit_if_idle()
        return 0  # nothing removed: the loop logs nothing
