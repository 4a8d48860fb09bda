"""The gateway's long-lived parts, built once per process from settings, and the stage order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from bastion.config.settings import Settings
from bastion.gateway.pipeline import Pipeline, Stage
from bastion.routing.build import build_router
from bastion.routing.router import Router
from bastion.store.db import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("bastion.gateway")


def default_stages(gateway: Gateway) -> list[Stage]:
    """The pipeline, in order (see docs/ARCHITECTURE.md). ``on_request`` runs top to bottom,
    ``on_response``/``on_stream``/``on_complete`` bottom to top."""
    from bastion.gateway.stages.auth import AuthStage
    from bastion.gateway.stages.cost import CostStage
    from bastion.gateway.stages.guard_in import GuardInStage
    from bastion.gateway.stages.guard_out import GuardOutStage
    from bastion.gateway.stages.ledger import LedgerStage
    from bastion.gateway.stages.limits import LimitsStage
    from bastion.gateway.stages.metrics import MetricsStage
    from bastion.gateway.stages.prompt import PromptStage
    from bastion.gateway.stages.usage import UsageStage
    from bastion.sessions.stage import SessionStage

    return [
        AuthStage(gateway),  # who is calling; rejects before anything is recorded
        LedgerStage(gateway),  # completes last: records what every later stage decided
        MetricsStage(),
        # Vault prompt reference -> real upstream messages; before limits, so budgets and token
        # limits estimate the prompt actually sent.
        PromptStage(gateway),
        # Scans the request (policy from tenant/user/key/prompt, so after auth and prompt) before
        # limits and routing: a blocked request costs no budget and no upstream call.
        GuardInStage(gateway),
        LimitsStage(gateway),  # admits rate limits and budgets; settles with the real cost
        CostStage(gateway),  # prices the usage (completes before limits settle)
        UsageStage(),  # token counts and answer text, from the provider or our tokenizer
        # Listed after usage so it sees the answer first (and wraps the stream innermost): usage, the
        # ledger and sessions only ever see what the output guard let through.
        GuardOutStage(gateway),
        # No per-request work: runs the session service (limiter connection, expiry sweep) with the gateway.
        SessionStage(gateway),
    ]


@dataclass
class Gateway:
    settings: Settings
    router: Router
    db: Database
    redis: Redis | None = None
    pipeline: Pipeline = field(init=False)
    ready: bool = False
    #: Services that stages share (auth resolver, ledger writer, ...), by name.
    services: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, stages: list[Stage] | None = None) -> Gateway:
        redis = None
        if settings.redis_url:
            from bastion.store.redis import create_redis

            redis = create_redis(settings.redis_url)
        gateway = cls(
            settings=settings, router=build_router(settings), db=Database.from_settings(settings), redis=redis
        )
        gateway.pipeline = Pipeline(stages if stages is not None else default_stages(gateway), gateway.router)
        return gateway

    @property
    def auto_migrate(self) -> bool:
        if self.settings.auto_migrate is not None:
            return self.settings.auto_migrate
        return self.db.is_sqlite

    async def start(self) -> None:
        if self.auto_migrate:
            from bastion.store.migrate import upgrade

            await upgrade(self.db.engine)
        started: list[Stage] = []
        try:
            for stage in self.pipeline.stages:
                await stage.start()
                started.append(stage)
            await self.router.start()
        except BaseException:
            # A failed start (wrong master key, unreachable database, ...) must not leave
            # background tasks of the stages that did start running.
            for stage in reversed(started):
                try:
                    await stage.stop()
                except Exception:
                    log.exception("stage_stop_failed", stage=stage.name)
            raise
        self.ready = True
        log.info("gateway_started", models=sorted(self.router.groups), database=self.db.url)

    async def stop(self) -> None:
        self.ready = False
        await self.router.aclose()
        for stage in reversed(self.pipeline.stages):
            try:
                await stage.stop()
            except Exception:
                log.exception("stage_stop_failed", stage=stage.name)
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
