"""Limits stage: rate limits (requests and tokens per minute) and budgets, admitted atomically
before the upstream call and settled with the real usage and cost afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.limits.service import LimitsService, limits_service

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class LimitsStage(Stage):
    name = "limits"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Built here (no I/O) so the stage works even if start() is skipped; start() connects.
        self.service: LimitsService | None = limits_service(gateway)

    async def start(self) -> None:
        if self.service is not None:
            await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()

    async def on_request(self, ctx: RequestContext) -> None:
        if self.service is not None:
            await self.service.admit(ctx)

    async def on_complete(self, ctx: RequestContext) -> None:
        # Runs after the cost stage's on_complete: ctx.cost_usd is final here.
        if self.service is not None:
            self.service.settle(ctx)
