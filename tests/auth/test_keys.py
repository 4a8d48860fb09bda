"""API keys on both databases: creation, verification, listing by prefix, revocation, expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bastion.auth import manage
from bastion.auth.authenticator import Authenticator
from bastion.auth.keys import LISTED_PREFIX_LENGTH, generate_key, hash_key, is_well_formed, listed_prefix
from bastion.auth.principal import Role
from bastion.errors import AuthenticationFailed
from bastion.store.db import Database
from bastion.store.models import ApiKey, AuditEvent
from tests.auth.support import bearer, seed_key, seed_user, settings_for


def test_key_material() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("bst_") and len(key) == 44 and is_well_formed(key)
        assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
        assert listed_prefix(key) == key[:LISTED_PREFIX_LENGTH]
    for bad in ("", "bst_", "bst_short", "sk-" + "a" * 41, "bst_" + "a" * 39 + "!", "bst_" + "a" * 41):
        assert not is_well_formed(bad), bad


@pytest.fixture
def authenticator(database: Database, database_url: str, tmp_path: Path) -> Authenticator:
    return Authenticator(settings_for(database_url, tmp_path / "data"), database)


async def test_create_stores_only_the_hash(database: Database) -> None:
    secret, key = await seed_key(database, "acme", Role.DEVELOPER, name="ci")
    async with database.session() as session:
        row = await session.get(ApiKey, key.id)
        assert row is not None
        stored = [str(value) for value in row.__dict__.values()]
        assert not any(secret in value for value in stored), "the key itself must never be stored"
        assert row.key_hash == hash_key(secret)
        assert row.prefix == secret[:12]
        events = list((await session.execute(select(AuditEvent).where(AuditEvent.action == "key.create"))).scalars())
        assert [event.target for event in events] == [f"key:{key.id}"]
        assert secret not in str(events[0].details)


async def test_verify_resolves_the_principal(database: Database, authenticator: Authenticator) -> None:
    user = await seed_user(database, "acme", "dev@acme.io")
    secret, key = await seed_key(database, "acme", Role.DEVELOPER, user_id=user.id, settings={"rpm": 7})
    principal = await authenticator.authenticate(bearer(secret))
    assert principal.tenant_name == "acme"
    assert principal.role is Role.DEVELOPER
    assert principal.key_id == key.id
    assert principal.user_id == user.id
    assert principal.key_settings == {"rpm": 7}
    assert principal.method == "api_key"
    assert not principal.platform_admin
    # The Anthropic SDK's header resolves to the same principal.
    assert await authenticator.authenticate({"x-api-key": secret}) == principal


async def test_list_by_prefix(database: Database) -> None:
    secrets = [(await seed_key(database, "acme", Role.SERVICE, name=f"k{i}"))[0] for i in range(3)]
    await seed_key(database, "other", Role.SERVICE)
    async with database.session() as session:
        tenant = await manage.tenant_by_name(session, "acme")
        assert tenant is not None
        page = await manage.list_keys(session, tenant.id, manage.PageRequest())
        assert sorted(key.prefix for key in page.items) == sorted(secret[:12] for secret in secrets)
        one = await manage.list_keys(session, tenant.id, manage.PageRequest(), prefix=secrets[1][:12])
        assert [key.prefix for key in one.items] == [secrets[1][:12]]
        views = [manage.key_view(key) for key in page.items]
        assert all("key" not in view and "key_hash" not in view for view in views)
        # Pagination walks every key exactly once.
        first = await manage.list_keys(session, tenant.id, manage.PageRequest(limit=2))
        assert len(first.items) == 2 and first.next_cursor
        rest = await manage.list_keys(session, tenant.id, manage.PageRequest(limit=2, cursor=first.next_cursor))
        assert len(rest.items) == 1 and rest.next_cursor is None
        assert {k.id for k in first.items} | {k.id for k in rest.items} == {k.id for k in page.items}


async def test_revocation_is_immediate(database: Database, authenticator: Authenticator) -> None:
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    assert (await authenticator.authenticate(bearer(secret))).key_id == key.id  # now cached
    async with database.transaction() as session:
        row = await manage.key_in_tenant(session, key.tenant_id, key.id)
        await manage.revoke_key(session, row, "test")
    await authenticator.invalidate()
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await authenticator.authenticate(bearer(secret))


async def test_expired_key_is_refused(database: Database, authenticator: Authenticator) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    secret, _ = await seed_key(database, "acme", Role.SERVICE, expires_at=past)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await authenticator.authenticate(bearer(secret))


async def test_expiry_is_checked_on_cache_hits(
    database: Database, authenticator: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    secret, _ = await seed_key(database, "acme", Role.SERVICE, expires_at=expires)
    await authenticator.authenticate(bearer(secret))
    assert len(authenticator.cache) == 1
    # Move the wall clock past the expiry: the cached entry must not outlive the key.
    later = expires.timestamp() + 1
    monkeypatch.setattr("bastion.auth.authenticator.time.time", lambda: later)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await authenticator.authenticate(bearer(secret))


async def test_disabled_user_and_tenant_refuse_their_keys(database: Database, authenticator: Authenticator) -> None:
    user = await seed_user(database, "acme", "dev@acme.io")
    secret, _ = await seed_key(database, "acme", Role.DEVELOPER, user_id=user.id)
    other, other_key = await seed_key(database, "beta", Role.SERVICE)
    await authenticator.authenticate(bearer(secret))
    async with database.transaction() as session:
        row = await manage.user_in_tenant(session, user.tenant_id, user.id)
        row.disabled = True
        tenant = await manage.tenant_by_id(session, other_key.tenant_id)
        tenant.disabled = True
    await authenticator.invalidate()
    with pytest.raises(AuthenticationFailed, match="user is disabled"):
        await authenticator.authenticate(bearer(secret))
    with pytest.raises(AuthenticationFailed, match="tenant is disabled"):
        await authenticator.authenticate(bearer(other))
