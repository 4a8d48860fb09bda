"""Auth stage: resolves every request to a principal (API key or JWT) before anything else; a
batch line comes with its owner's principal, resolved again when the batch runs."""

from __future__ import annotations

from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Permission
from bastion.errors import PermissionDenied
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage

_CALL_MODELS = Permission.CALL_MODELS


class AuthStage(Stage):
    name = "auth"

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def on_request(self, ctx: RequestContext) -> None:
        # A batch line arrives with its owner already resolved (``Authenticator.principal_of``):
        # there are no headers to read, and the role is checked all the same.
        principal = ctx.principal or await self.authenticator.authenticate(ctx.headers)
        if not principal.can(_CALL_MODELS):
            raise PermissionDenied(
                f"This {principal.method.replace('_', ' ')} has the {principal.role.value} role, "
                "which may not call models."
            )
        ctx.principal = principal
