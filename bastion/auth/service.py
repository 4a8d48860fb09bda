"""The process's ``Authenticator``, and how HTTP endpoints outside the pipeline authenticate.

Endpoints that do not go through the pipeline (the admin API, the ledger API, ...) call
``authenticate_request(request, Permission.X)``: the same credentials, cache and epoch as the
model endpoints, plus a role check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Permission, Principal
from bastion.errors import PermissionDenied

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

SERVICE_NAME = "auth"


def authenticator_for(gateway: Gateway) -> Authenticator:
    """The gateway's authenticator (``gateway.services["auth"]``), created on first use."""
    authenticator = gateway.services.get(SERVICE_NAME)
    if authenticator is None:
        authenticator = Authenticator(gateway.settings, gateway.db)
        gateway.services[SERVICE_NAME] = authenticator
    return authenticator  # type: ignore[no-any-return]


def require(principal: Principal, permission: Permission | None) -> Principal:
    if permission is not None and not principal.can(permission):
        raise PermissionDenied(f"The {principal.role.value} role lacks the {permission.value} permission.")
    return principal


async def authenticate_request(request: Request, permission: Permission | None = None) -> Principal:
    """The caller's principal (401 without valid credentials), checked for ``permission`` (403)."""
    gateway: Gateway = request.app.state.gateway
    principal = await authenticator_for(gateway).authenticate(request.headers)
    request.scope.setdefault("state", {})["principal"] = principal
    return require(principal, permission)
