"""Insights of one process: the roll-up (and its job), the submitting loop, the alert gauges, the
drift sampler and the live event stream, started and stopped with the gateway."""

from __future__ import annotations

from bastion.config.insights_settings import InsightsSettings
from bastion.insights.alerts import AlertMonitor
from bastion.insights.drift import DriftSampler, EmbedTexts
from bastion.insights.events import EventBroker, MemoryEvents
from bastion.insights.ingest import IngestLimiter
from bastion.insights.job import JOB_KIND, RollupJob, RollupScheduler
from bastion.insights.rollup import Rollup
from bastion.jobs.service import JobService
from bastion.store.db import Database


class InsightsService:
    def __init__(
        self,
        db: Database,
        settings: InsightsSettings,
        jobs: JobService,
        *,
        embed: EmbedTexts | None = None,
        embedding_model: str = "all-MiniLM-L6-v2",
        events: EventBroker | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.rollup = Rollup(db, settings)
        self.drift = (
            DriftSampler(db, settings, embed, embedding_model) if settings.drift.enabled and embed is not None else None
        )
        self.scheduler = RollupScheduler(jobs, settings, self.rollup)
        #: The live stream of roll-up runs and alert changes (the dashboard's).
        self.events = events if events is not None else MemoryEvents(settings.stream.replay_events)
        self.alerts = AlertMonitor(db, settings, events=self.events)
        self.job = RollupJob(self.rollup, self.drift, self.events)
        self.jobs = jobs
        self.ingest_limiter = IngestLimiter(settings.ingest.per_minute)

    def register(self) -> None:
        self.jobs.registry.register(JOB_KIND, self.job.run)

    async def start(self) -> None:
        await self.events.start()
        await self.scheduler.start()
        await self.alerts.start()

    async def stop(self) -> None:
        await self.alerts.stop()
        await self.scheduler.stop()
        await self.events.stop()
