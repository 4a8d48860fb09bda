"""Limits stage: rate limits (requests and tokens per minute) and budgets, admitted atomically
before the upstream call and settled with the real usage and cost afterwards."""

from __future__ import annotations

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.limits.service import LimitsService


class LimitsStage(Stage):
    name = "limits"

    def __init__(self, service: LimitsService) -> None:
        self.service = service

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.response is not None:
            return  # answered by an earlier stage (the guard's refusal): nothing goes upstream
        ticket = await self.service.admit(ctx.request_id, ctx.principal, ctx.model, ctx.body, ctx.endpoint)
        if ticket is not None:
            ctx.limits = ticket
            if ticket.headers:
                ctx.add_response_headers(ticket.headers)

    async def on_complete(self, ctx: RequestContext) -> None:
        # Runs after the cost stage's on_complete: ctx.cost_usd is final here.
        if ctx.limits is not None:
            self.service.settle(ctx.limits, ctx.usage, ctx.output_text, ctx.cost_usd, ctx.error)
