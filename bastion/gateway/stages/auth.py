"""Auth stage: resolves every request to a principal (API key or JWT) before anything else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.pipeline import Stage

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class AuthStage(Stage):
    name = "auth"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
