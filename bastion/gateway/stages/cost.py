"""Cost stage: prices every interaction from its usage and the price table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.spend.cost import interaction_cost
from bastion.spend.routes import route_pricing

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class CostStage(Stage):
    name = "cost"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.pricing = route_pricing(gateway)

    async def on_complete(self, ctx: RequestContext) -> None:
        # Completes after the usage stage (streams included) and before limits settle and the
        # ledger records, which both read ctx.cost_usd.
        ctx.cost_usd = interaction_cost(self.pricing, ctx)
