"""Limits stage: rate limits (requests and tokens per minute) and budgets, admitted atomically
before the upstream call and settled with the real usage and cost afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.pipeline import Stage

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class LimitsStage(Stage):
    name = "limits"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
