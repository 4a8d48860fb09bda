"""The authenticator's cache, epochs, header parsing and anonymous mode (both databases)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

import bastion.auth.authenticator as authenticator_module
from bastion.auth import lookup, manage
from bastion.auth.authenticator import Authenticator, credential_from_headers
from bastion.auth.epoch import FileEpoch
from bastion.auth.principal import Role
from bastion.errors import AuthenticationFailed
from bastion.observability.metrics import REGISTRY
from bastion.store.db import Database
from tests.auth.support import bearer, seed_key, settings_for

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every database look-up of a key, by hash (the cache-miss path)."""
    calls: list[str] = []
    real = lookup.resolve_key

    async def counting(session: Any, key_hash: str, now: Any = None) -> Any:
        calls.append(key_hash)
        return await real(session, key_hash, now)

    monkeypatch.setattr(authenticator_module, "resolve_key", counting)
    return calls


def make(
    database: Database, database_url: str, data_dir: Path, redis_url: str | None = None, **auth: Any
) -> Authenticator:
    settings = settings_for(database_url, data_dir, auth=auth, redis_url=redis_url)
    return Authenticator(settings, database)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


async def test_cache_hits_skip_the_database(
    database: Database, database_url: str, tmp_path: Path, lookups: list[str]
) -> None:
    auth = make(database, database_url, tmp_path)
    secret, _ = await seed_key(database, "acme", Role.SERVICE)
    for _ in range(50):
        await auth.authenticate(bearer(secret))
    assert len(lookups) == 1


async def test_refusals_are_cached_too(
    database: Database, database_url: str, tmp_path: Path, lookups: list[str]
) -> None:
    auth = make(database, database_url, tmp_path)
    unknown = "bst_" + "x" * 40
    for _ in range(20):
        with pytest.raises(AuthenticationFailed, match="Invalid API key"):
            await auth.authenticate(bearer(unknown))
    assert len(lookups) == 1


async def test_malformed_keys_never_reach_the_database(
    database: Database, database_url: str, tmp_path: Path, lookups: list[str]
) -> None:
    auth = make(database, database_url, tmp_path)
    for bad in ("bst_short", "bst_" + "a" * 39 + "%", "bst_" + "a" * 100, "not-a-key", "eyJ.broken"):
        with pytest.raises(AuthenticationFailed) as caught:
            await auth.authenticate(bearer(bad))
        assert caught.value.status == 401
    assert lookups == []


async def test_concurrent_misses_share_one_lookup(
    database: Database, database_url: str, tmp_path: Path, lookups: list[str]
) -> None:
    auth = make(database, database_url, tmp_path)
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    principals = await asyncio.gather(*(auth.authenticate(bearer(secret)) for _ in range(100)))
    assert {p.key_id for p in principals} == {key.id}
    assert len(lookups) == 1


async def test_ttl_bounds_the_cache(database: Database, database_url: str, tmp_path: Path, lookups: list[str]) -> None:
    auth = make(database, database_url, tmp_path, cache_ttl_s=0)
    secret, _ = await seed_key(database, "acme", Role.SERVICE)
    await auth.authenticate(bearer(secret))
    await auth.authenticate(bearer(secret))
    assert len(lookups) == 2


async def test_cache_is_bounded(database: Database, database_url: str, tmp_path: Path) -> None:
    auth = make(database, database_url, tmp_path, cache_size=3)
    secrets = [(await seed_key(database, "acme", Role.SERVICE))[0] for _ in range(5)]
    for secret in secrets:
        await auth.authenticate(bearer(secret))
    assert len(auth.cache) == 3


async def test_file_epoch_invalidates_other_processes(database: Database, database_url: str, tmp_path: Path) -> None:
    """Two authenticators sharing a data directory stand for two processes on one machine (or
    the CLI and a gateway): a revocation through one is refused by the other at once."""
    first = make(database, database_url, tmp_path)
    second = make(database, database_url, tmp_path)
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    await second.authenticate(bearer(secret))  # cached in "process" two
    async with database.transaction() as session:
        await manage.revoke_key(session, await manage.key_in_tenant(session, key.tenant_id, key.id), "test")
    await first.invalidate()
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await second.authenticate(bearer(secret))


def test_file_epoch_is_shared_through_the_file(tmp_path: Path) -> None:
    one, two = FileEpoch(tmp_path / "auth.epoch"), FileEpoch(tmp_path / "auth.epoch")
    before = two.read()
    one.bump()
    assert two.read() == before + 1
    two.bump()
    assert one.read() == before + 2
    one.close()
    two.close()


async def test_redis_epoch_invalidates_other_processes(
    database: Database, database_url: str, tmp_path: Path, redis: Redis
) -> None:
    key_name = f"test:auth:epoch:{uuid.uuid4().hex}"
    # Different data directories: only Redis connects the two.
    first = make(database, database_url, tmp_path / "a", REDIS_URL, epoch_key=key_name)
    second = make(database, database_url, tmp_path / "b", REDIS_URL, epoch_key=key_name)
    try:
        secret, key = await seed_key(database, "acme", Role.SERVICE)
        await second.authenticate(bearer(secret))
        async with database.transaction() as session:
            await manage.revoke_key(session, await manage.key_in_tenant(session, key.tenant_id, key.id), "test")
        await first.invalidate()
        # Created at a random start by its first bump (never at a value a process may have seen).
        epoch = await redis.get(key_name)
        assert epoch is not None and int(epoch) > 1 << 61
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await second.authenticate(bearer(secret))
    finally:
        await first.aclose()
        await second.aclose()
        await redis.delete(key_name)


async def test_unreachable_redis_falls_back_to_the_database(
    database: Database, database_url: str, tmp_path: Path, lookups: list[str]
) -> None:
    auth = make(database, database_url, tmp_path, "redis://127.0.0.1:1/0")  # nothing listens there
    failures_before = _epoch_failures("read")
    try:
        secret, key = await seed_key(database, "acme", Role.SERVICE)
        for _ in range(3):
            assert (await auth.authenticate(bearer(secret))).key_id == key.id
        # No epoch, no trust in the cache: every request was verified against the database.
        assert len(lookups) == 3
        assert _epoch_failures("read") - failures_before == 3
        await auth.invalidate()  # a failed bump is logged and counted, never raised
    finally:
        await auth.aclose()


def _epoch_failures(operation: str) -> float:
    return REGISTRY.get_sample_value("bastion_auth_epoch_unavailable_total", {"operation": operation}) or 0.0


async def test_anonymous_principal_when_auth_is_off(database: Database, database_url: str, tmp_path: Path) -> None:
    auth = make(database, database_url, tmp_path, enabled=False, default_tenant="open")
    await auth.start()
    principal = await auth.authenticate({})
    assert principal.tenant_name == "open" and principal.role is Role.SERVICE and principal.method == "anonymous"
    # Placeholder keys that SDKs insist on sending are not Bastion credentials: ignored.
    assert await auth.authenticate(bearer("sk-placeholder")) == principal
    # Bastion credentials are still verified.
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer("bst_" + "z" * 40))
    secret, key = await seed_key(database, "acme", Role.DEVELOPER)
    assert (await auth.authenticate(bearer(secret))).key_id == key.id


async def test_missing_credentials_when_auth_is_on(database: Database, database_url: str, tmp_path: Path) -> None:
    auth = make(database, database_url, tmp_path)
    with pytest.raises(AuthenticationFailed, match="Missing credentials") as caught:
        await auth.authenticate({})
    assert caught.value.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"authorization": "Bearer abc"}, "abc"),
        ({"authorization": "bearer   abc  "}, "abc"),
        ({"x-api-key": "abc"}, "abc"),
        ({"authorization": "Bearer abc", "x-api-key": "other"}, "abc"),
    ],
)
def test_credential_from_headers(headers: dict[str, str], expected: str | None) -> None:
    assert credential_from_headers(headers) == expected


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
def test_bad_authorization_headers(value: str) -> None:
    with pytest.raises(AuthenticationFailed):
        credential_from_headers({"authorization": value})
