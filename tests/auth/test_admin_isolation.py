"""Tenant isolation: tenant beta's admin tries every admin route on tenant acme's ids. Ids of
another tenant answer 404 (as if they did not exist), listings show only the caller's tenant, and
acme's data is unchanged afterwards."""

from __future__ import annotations

from tests.auth.admin_world import ROUTES, World, snapshot

#: Routes whose path names an acme id: beta must get 404, or 403 where only platform admins may go.
EXPECTED_FOR_FOREIGN_IDS = {
    "GET /tenants/{acme}": 404,
    "PATCH /tenants/{acme}": 404,
    "POST /tenants/{beta}/keys": 403,  # platform only; tried with acme's id below
    "GET /users/{user}": 404,
    "PATCH /users/{user}": 404,
    "DELETE /users/{victim_user}": 404,
    "GET /keys/{victim_key}": 404,
    "PATCH /keys/{victim_key}": 404,
    "POST /keys/{victim_key}/revoke": 404,
}


async def test_beta_admin_cannot_see_or_change_acme(world: World) -> None:
    acme_before = await snapshot(world.env.db, world.ids["acme"])
    # Every acme id stands where beta's would: the world's ids, plus acme's tenant id for beta's.
    foreign_ids = {**world.ids, "beta": world.ids["acme"]}
    acme_ids = {world.ids[label] for label in ("acme", "user", "victim_user", "victim_key", "key_admin")}
    wrong: list[str] = []
    for route in ROUTES:
        body = route.body() if route.body else None
        response = await world.call("beta_admin", route.method, route.path(foreign_ids), body)
        expected = EXPECTED_FOR_FOREIGN_IDS.get(route.name)
        if expected is None:
            # Routes without an id act on the caller's own tenant (or are platform-only).
            if route.rule == "platform":
                expected = 403
            elif response.status_code >= 400:
                wrong.append(f"{route.name}: {response.status_code} {response.text}")
                continue
            leaked = [value for value in acme_ids if value in response.text]
            if leaked:
                wrong.append(f"{route.name}: response names acme ids {leaked}")
            if expected is None:
                continue
        if response.status_code != expected:
            wrong.append(f"{route.name}: {response.status_code} (expected {expected}) {response.text}")
        elif expected == 404 and response.json()["error"]["type"] != "not_found_error":
            wrong.append(f"{route.name}: error shape {response.json()}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(world.env.db, world.ids["acme"]) == acme_before


async def test_foreign_references_in_bodies_are_not_found(world: World) -> None:
    # A key for a user of another tenant: 404, not a key in acme owned by beta's user.
    response = await world.call(
        "admin", "POST", "/api/v1/admin/keys", {"role": "service", "user_id": world.ids["beta_user"]}
    )
    assert response.status_code == 404, response.text
    listing = await world.call("admin", "GET", "/api/v1/admin/keys", params={"user_id": world.ids["beta_user"]})
    assert listing.status_code == 200 and listing.json()["data"] == []


async def test_listings_are_scoped_to_the_callers_tenant(world: World) -> None:
    users = (await world.call("beta_admin", "GET", "/api/v1/admin/users")).json()["data"]
    assert {u["tenant_id"] for u in users} == {world.ids["beta"]}
    keys = (await world.call("beta_admin", "GET", "/api/v1/admin/keys")).json()["data"]
    assert {k["tenant_id"] for k in keys} == {world.ids["beta"]}
    audit = (await world.call("beta_admin", "GET", "/api/v1/admin/audit")).json()["data"]
    assert {e["tenant_id"] for e in audit} <= {world.ids["beta"]}
    tenant = (await world.call("beta_admin", "GET", "/api/v1/admin/tenant")).json()
    assert tenant["id"] == world.ids["beta"]


async def test_platform_admin_reaches_other_tenants_only_through_tenant_routes(world: World) -> None:
    # /users and /keys stay scoped to the platform admin's own tenant.
    response = await world.call("platform", "GET", f"/api/v1/admin/users/{world.ids['user']}")
    assert response.status_code == 404
    acme = await world.call("platform", "GET", f"/api/v1/admin/tenants/{world.ids['acme']}")
    assert acme.status_code == 200 and acme.json()["name"] == "acme"
    disabled = await world.call("platform", "PATCH", f"/api/v1/admin/tenants/{world.ids['beta']}", {"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    # A disabled tenant's keys stop working at once.
    refused = await world.call("beta_admin", "GET", "/api/v1/admin/me")
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]
    # A tenant admin may not disable its own tenant.
    own = await world.call("admin", "PATCH", "/api/v1/admin/tenant", {"disabled": True})
    assert own.status_code == 400
