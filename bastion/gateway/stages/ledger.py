"""Ledger stage: records every interaction durably (journal first, database in the background)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.pipeline import Stage

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class LedgerStage(Stage):
    name = "ledger"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
