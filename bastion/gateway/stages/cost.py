"""Cost stage: prices every interaction from its usage and the price table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.pipeline import Stage

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class CostStage(Stage):
    name = "cost"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
