"""Auth stage: resolves every request to a principal (API key or JWT) before anything else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.auth.principal import Permission
from bastion.auth.service import authenticator_for
from bastion.errors import PermissionDenied
from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

_CALL_MODELS = Permission.CALL_MODELS


class AuthStage(Stage):
    name = "auth"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.authenticator = authenticator_for(gateway)

    async def start(self) -> None:
        await self.authenticator.start()

    async def stop(self) -> None:
        await self.authenticator.aclose()

    async def on_request(self, ctx: RequestContext) -> None:
        principal = await self.authenticator.authenticate(ctx.headers)
        if not principal.can(_CALL_MODELS):
            raise PermissionDenied(
                f"This {principal.method.replace('_', ' ')} has the {principal.role.value} role, "
                "which may not call models."
            )
        ctx.principal = principal
