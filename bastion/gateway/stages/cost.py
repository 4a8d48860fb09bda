"""Cost stage: prices every interaction from its usage and the price table."""

from __future__ import annotations

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.spend.cost import interaction_cost
from bastion.spend.routes import RoutePricing


class CostStage(Stage):
    name = "cost"

    def __init__(self, pricing: RoutePricing) -> None:
        self.pricing = pricing

    async def on_complete(self, ctx: RequestContext) -> None:
        # Completes after the usage stage (streams included) and before limits settle and the
        # ledger records, which both read ctx.cost_usd.
        ctx.cost_usd = interaction_cost(
            self.pricing, ctx.trace, ctx.model, ctx.usage, ctx.body, ctx.endpoint, ctx.output_text
        )
