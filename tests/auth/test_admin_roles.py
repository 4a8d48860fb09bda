"""Role checks on every admin route: each role against each route, and callers without valid
credentials. A refused call changes nothing."""

from __future__ import annotations

import pytest

from bastion.auth.principal import Role
from tests.auth.admin_world import ROUTES, AdminRoute, World, snapshot

ROLES = [Role.SERVICE, Role.DEVELOPER, Role.VIEWER, Role.ADMIN]  # the allowed role last: writes may delete


def allowed(route: AdminRoute, role: Role) -> bool:
    if route.rule == "any":
        return True
    if route.rule == "read":
        return role in (Role.ADMIN, Role.VIEWER)
    if route.rule == "admin":
        return role is Role.ADMIN
    return False  # platform: no tenant key, whatever its role


def success_status(route: AdminRoute) -> int:
    return 201 if route.method == "POST" and not route.template.endswith("/revoke") else 200


async def test_every_role_against_every_route(world: World) -> None:
    wrong: list[str] = []
    for route in ROUTES:
        for role in ROLES:
            refused_before = await snapshot(world.env.db, world.ids["acme"])
            body = route.body() if route.body else None
            response = await world.call(role.value, route.method, route.path(world.ids), body)
            expected = success_status(route) if allowed(route, role) else 403
            if response.status_code != expected:
                wrong.append(f"{route.name} as {role.value}: {response.status_code} (expected {expected})")
            if expected == 403:
                error = response.json().get("error", {})
                if error.get("type") != "permission_error":
                    wrong.append(f"{route.name} as {role.value}: error shape {response.json()}")
                if await snapshot(world.env.db, world.ids["acme"]) != refused_before:
                    wrong.append(f"{route.name} as {role.value}: refused, yet data changed")
    assert not wrong, "\n".join(wrong)


async def test_platform_routes_need_a_platform_admin(world: World) -> None:
    for route in (r for r in ROUTES if r.rule == "platform"):
        body = route.body() if route.body else None
        response = await world.call("platform", route.method, route.path(world.ids), body)
        assert response.status_code == success_status(route), (route.name, response.text)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer bst_" + "0" * 40},
        {"authorization": "Bearer bst_tooshort"},
        {"authorization": "Bearer eyJhbGciOiJub25lIn0.e30."},
        {"authorization": "Basic YWRtaW46YWRtaW4="},
        {"x-api-key": "garbage"},
    ],
    ids=["none", "unknown-key", "malformed-key", "jwt-when-off", "basic", "x-api-key-garbage"],
)
async def test_every_route_needs_valid_credentials(world: World, headers: dict[str, str]) -> None:
    before = await snapshot(world.env.db, world.ids["acme"])
    for route in ROUTES:
        body = route.body() if route.body else None
        response = await world.call(None, route.method, route.path(world.ids), body, headers=headers)
        assert response.status_code == 401, (route.name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["type"] == "authentication_error" and error["message"], error
        assert "Traceback" not in response.text
    assert await snapshot(world.env.db, world.ids["acme"]) == before
