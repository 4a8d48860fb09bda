"""What the admin API does for a tenant admin: keys, users, tenants, settings, audit, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bastion.store.models import AuditEvent
from tests.auth.admin_world import World
from tests.auth.support import bearer

API = "/api/v1/admin"


async def test_a_new_key_is_shown_once_and_works(world: World) -> None:
    created = await world.call("admin", "POST", f"{API}/keys", {"name": "ci", "role": "developer"})
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["key"]
    assert secret.startswith("bst_") and body["prefix"] == secret[:12] and "warning" in body
    assert body["role"] == "developer" and body["revoked_at"] is None
    fetched = (await world.call("admin", "GET", f"{API}/keys/{body['id']}")).json()
    assert "key" not in fetched and secret not in str(fetched)
    listed = (await world.call("admin", "GET", f"{API}/keys", params={"prefix": secret[:12]})).json()
    assert [k["id"] for k in listed["data"]] == [body["id"]]
    me = await world.env.client.get(f"{API}/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["key_id"] == body["id"] and me.json()["role"] == "developer"


async def test_revocation_applies_to_the_next_request(world: World) -> None:
    created = (await world.call("admin", "POST", f"{API}/keys", {"role": "viewer"})).json()
    headers = bearer(created["key"])
    assert (await world.env.client.get(f"{API}/tenant", headers=headers)).status_code == 200  # cached now
    revoked = await world.call("admin", "POST", f"{API}/keys/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = await world.env.client.get(f"{API}/tenant", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    # Still listed (with revoked_at), unless revoked keys are left out.
    everything = (await world.call("admin", "GET", f"{API}/keys")).json()["data"]
    assert created["id"] in {k["id"] for k in everything}
    active = (await world.call("admin", "GET", f"{API}/keys", params={"include_revoked": "false"})).json()["data"]
    assert created["id"] not in {k["id"] for k in active}


async def test_key_expiry_and_settings(world: World) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert (await world.call("admin", "POST", f"{API}/keys", {"expires_at": past})).status_code == 400
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = await world.call("admin", "POST", f"{API}/keys", {"expires_at": future, "settings": {"rpm": 10}})
    assert created.status_code == 201 and created.json()["expires_at"]
    key_id = created.json()["id"]
    patched = await world.call("admin", "PATCH", f"{API}/keys/{key_id}", {"settings": {"tpm": 500, "rpm": None}})
    assert patched.status_code == 200 and patched.json()["settings"] == {"tpm": 500}
    # The new settings reach the principal at once (the cache was invalidated).
    me_settings = await world.env.client.get(f"{API}/me", headers=bearer(created.json()["key"]))
    assert me_settings.status_code == 200
    principal = await world.env.authenticator.authenticate(bearer(created.json()["key"]))
    assert principal.key_settings == {"tpm": 500}
    for bad in ({"rpm": 0}, {"daily_usd": -1}, {"unknown": 1}, {"rpm": "many"}):
        response = await world.call("admin", "PATCH", f"{API}/keys/{key_id}", {"settings": bad})
        assert response.status_code == 400, (bad, response.text)
        assert "settings." in response.json()["error"]["message"]


async def test_user_lifecycle(world: World) -> None:
    created = await world.call("admin", "POST", f"{API}/users", {"email": "New@Acme.io", "role": "developer"})
    assert created.status_code == 201 and created.json()["email"] == "new@acme.io"
    user_id = created.json()["id"]
    duplicate = await world.call("admin", "POST", f"{API}/users", {"email": "new@acme.io"})
    assert duplicate.status_code == 409
    key = (await world.call("admin", "POST", f"{API}/keys", {"role": "viewer", "user_id": user_id})).json()
    assert key["user_id"] == user_id
    headers = bearer(key["key"])
    assert (await world.env.client.get(f"{API}/me", headers=headers)).json()["user_id"] == user_id
    changed = await world.call("admin", "PATCH", f"{API}/users/{user_id}", {"role": "admin", "disabled": True})
    assert changed.status_code == 200 and changed.json()["role"] == "admin" and changed.json()["disabled"]
    assert (await world.env.client.get(f"{API}/me", headers=headers)).status_code == 401
    deleted = await world.call("admin", "DELETE", f"{API}/users/{user_id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await world.call("admin", "GET", f"{API}/users/{user_id}")).status_code == 404
    assert (await world.call("admin", "GET", f"{API}/keys/{key['id']}")).status_code == 404


async def test_tenant_settings(world: World) -> None:
    patched = await world.call(
        "admin", "PATCH", f"{API}/tenant", {"settings": {"ledger_mode": "redacted", "daily_usd": 25, "rpm": 100}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == {"ledger_mode": "redacted", "daily_usd": 25.0, "rpm": 100}
    principal = await world.env.authenticator.authenticate(bearer(world.keys["service"]))
    assert principal.tenant_settings["ledger_mode"] == "redacted"
    for bad in ({"ledger_mode": "everything"}, {"guard": {"pii": "shout"}}, {"guard": "block"}):
        response = await world.call("admin", "PATCH", f"{API}/tenant", {"settings": bad})
        assert response.status_code == 400, (bad, response.text)
    good_guard = await world.call("admin", "PATCH", f"{API}/tenant", {"settings": {"guard": {"pii": "block"}}})
    assert good_guard.status_code == 200 and good_guard.json()["settings"]["guard"] == {"pii": "block"}


async def test_platform_admin_bootstraps_a_tenant(world: World) -> None:
    tenant = await world.call("platform", "POST", f"{API}/tenants", {"name": "gamma"})
    assert tenant.status_code == 201
    assert (await world.call("platform", "POST", f"{API}/tenants", {"name": "gamma"})).status_code == 409
    first = await world.call("platform", "POST", f"{API}/tenants/{tenant.json()['id']}/keys", {"role": "admin"})
    assert first.status_code == 201
    me = (await world.env.client.get(f"{API}/me", headers=bearer(first.json()["key"]))).json()
    assert me["tenant_name"] == "gamma" and me["role"] == "admin" and me["platform_admin"] is False
    names = {t["name"] for t in (await world.call("platform", "GET", f"{API}/tenants")).json()["data"]}
    assert {"acme", "beta", "root", "gamma"} <= names
    # Extra fields are refused: platform rights cannot be granted through the API.
    sneaky = await world.call("admin", "POST", f"{API}/keys", {"role": "admin", "platform_admin": True})
    assert sneaky.status_code == 400


async def test_every_write_is_audited(world: World) -> None:
    actor = f"key:{world.ids['key_admin']}"
    await world.call("admin", "POST", f"{API}/users", {"email": "audited@acme.io"})
    await world.call("admin", "PATCH", f"{API}/tenant", {"settings": {"rpm": 1}})
    await world.call("admin", "POST", f"{API}/keys/{world.ids['victim_key']}/revoke")
    async with world.env.db.session() as session:
        events = (
            await session.execute(select(AuditEvent).where(AuditEvent.actor == actor).order_by(AuditEvent.created_at))
        ).scalars()
        actions = [(event.action, event.tenant_id) for event in events]
    assert actions == [
        ("user.create", world.ids["acme"]),
        ("tenant.update", world.ids["acme"]),
        ("key.revoke", world.ids["acme"]),
    ]
    listed = (await world.call("admin", "GET", f"{API}/audit")).json()["data"]
    assert {"user.create", "tenant.update", "key.revoke"} <= {event["action"] for event in listed}


async def test_pagination(world: World) -> None:
    for i in range(5):
        await world.call("admin", "POST", f"{API}/users", {"email": f"page{i}@acme.io"})
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await world.call("admin", "GET", f"{API}/users", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [user["id"] for user in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    everything = (await world.call("admin", "GET", f"{API}/users", params={"limit": "500"})).json()["data"]
    assert seen == [user["id"] for user in everything] and len(seen) == 7  # 2 seeded + 5
