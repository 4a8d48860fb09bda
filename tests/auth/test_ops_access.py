"""Who may read /metrics and the details of /readyz (docs/AUTH.md, "Operational endpoints").

With auth on they need a credential holding ``ops:read`` (admin, viewer) unless the operator makes
them public; the ready / not-ready status of /readyz and /healthz stay public for load balancers.
With auth off they follow the rest of the gateway (public) unless the operator closes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.principal import Role
from tests.auth.support import bearer, seed_key, settings_for
from tests.support.harness import running_gateway

ROLES = (Role.ADMIN, Role.VIEWER, Role.DEVELOPER, Role.SERVICE)


class Ops:
    def __init__(self, client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
        self.client = client
        self.keys = keys

    async def get(self, path: str, role: Role | None = None, /, **headers: str) -> httpx.Response:
        if role is not None:
            headers.update(bearer(self.keys[role]))
        return await self.client.get(path, headers=headers)


@pytest.fixture
async def ops(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Ops]:
    """The gateway in process on SQLite with ``request.param`` (auth, server) settings and a key per role."""
    auth, server = request.param
    settings = settings_for(f"sqlite:///{tmp_path / 'bastion.db'}", tmp_path / "data", auth=auth, server=server)
    settings = settings.model_copy(update={"auto_migrate": True})
    async with running_gateway(settings, stages=[]) as running:
        keys = {role: (await seed_key(running.gateway.db, "acme", role))[0] for role in ROLES}
        yield Ops(running.client, keys)


def settings(auth: bool, **server: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"enabled": auth}, server


def _error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


@pytest.mark.parametrize("ops", [settings(True)], indirect=True, ids=["auth-on-defaults"])
async def test_by_default_metrics_need_an_ops_reader(ops: Ops) -> None:
    refused = await ops.get("/metrics")
    assert refused.status_code == 401 and _error_code(refused) == "invalid_api_key"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert (await ops.get("/metrics", authorization="Bearer bst_" + "x" * 40)).status_code == 401
    for role in (Role.DEVELOPER, Role.SERVICE):
        denied = await ops.get("/metrics", role)
        assert denied.status_code == 403 and _error_code(denied) == "permission_denied", role
    for role in (Role.ADMIN, Role.VIEWER):
        answer = await ops.get("/metrics", role)
        assert answer.status_code == 200 and answer.text.startswith("# HELP"), role
    # x-api-key (the Anthropic SDK's header) is a credential as good as Bearer
    assert (await ops.get("/metrics", **{"x-api-key": ops.keys[Role.VIEWER]})).status_code == 200


@pytest.mark.parametrize("ops", [settings(True)], indirect=True, ids=["auth-on-defaults"])
async def test_by_default_readyz_shows_details_only_to_an_ops_reader(ops: Ops) -> None:
    public = await ops.get("/readyz")
    assert public.status_code == 200 and public.json() == {"status": "ready"}  # what a load balancer needs
    for role in (Role.ADMIN, Role.VIEWER):
        detailed = (await ops.get("/readyz", role)).json()
        assert detailed["status"] == "ready" and detailed["unavailable_models"] == [], role
        assert "deployments" in detailed
    # A credential asks for the details: it is checked, never silently downgraded.
    assert (await ops.get("/readyz", Role.SERVICE)).status_code == 403
    assert (await ops.get("/readyz", authorization="Bearer bst_" + "x" * 40)).status_code == 401
    assert (await ops.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize(
    "ops",
    [settings(True, public_metrics=True, public_readyz_details=True)],
    indirect=True,
    ids=["auth-on-public-ops"],
)
async def test_an_operator_may_make_them_public(ops: Ops) -> None:
    assert (await ops.get("/metrics")).status_code == 200
    assert "deployments" in (await ops.get("/readyz")).json()
    # Public means no check at all: even a service key's call shows everything.
    assert "deployments" in (await ops.get("/readyz", Role.SERVICE)).json()


@pytest.mark.parametrize("ops", [settings(False)], indirect=True, ids=["auth-off-defaults"])
async def test_with_auth_off_they_are_public(ops: Ops) -> None:
    assert (await ops.get("/metrics")).status_code == 200
    assert "deployments" in (await ops.get("/readyz")).json()


@pytest.mark.parametrize(
    "ops",
    [settings(False, public_metrics=False, public_readyz_details=False)],
    indirect=True,
    ids=["auth-off-closed-ops"],
)
async def test_with_auth_off_an_operator_may_close_them(ops: Ops) -> None:
    # Anonymous callers are service principals, which lack ops:read; keys are still verified.
    assert (await ops.get("/metrics")).status_code == 403
    assert (await ops.get("/metrics", Role.VIEWER)).status_code == 200
    assert (await ops.get("/readyz")).json() == {"status": "ready"}
    assert "deployments" in (await ops.get("/readyz", Role.ADMIN)).json()
