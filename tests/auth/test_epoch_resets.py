"""A revoked key never comes back: not after ``FLUSHDB``, not after Redis restarts empty, not when
it was revoked while Redis was down, and not when Redis comes back with its old data after such a
revocation. Authenticators with separate data directories stand for separate processes (only
Redis connects them); Redis is a private server or a proxy to it that the test controls.
(``test_cross_process.py`` runs the same with real gateway processes.)"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.auth import manage
from bastion.auth.authenticator import Authenticator
from bastion.auth.epoch import FILE_RECHECK_S, FileEpoch
from bastion.auth.principal import Role
from bastion.errors import AuthenticationFailed
from bastion.store.db import Database
from tests.auth.support import bearer, seed_key, settings_for
from tests.limits.test_failover import RedisProxy
from tests.support.gateway import free_port
from tests.support.redis_server import PrivateRedis, private_redis  # noqa: F401

#: Far longer than any test: only the epoch can explain a refusal.
LONG_TTL_S = 3600
#: Requests each check makes: one refusal could be luck (a cache miss), five in a row is the rule.
ATTEMPTS = 5

Factory = Callable[[str, str], Authenticator]


@pytest.fixture
async def processes(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes authenticators ("processes") on a Redis URL; all are closed after the test."""
    made: list[Authenticator] = []
    key = f"test:auth:epoch:{uuid.uuid4().hex}"

    def make(name: str, redis_url: str) -> Authenticator:
        settings = settings_for(
            database_url, tmp_path / name, redis_url=redis_url, auth={"cache_ttl_s": LONG_TTL_S, "epoch_key": key}
        )
        made.append(Authenticator(settings, database))
        return made[-1]

    yield make
    for auth in made:
        await auth.aclose()


async def _cached(auth: Authenticator, secret: str) -> None:
    """Authenticate until the credential is served from ``auth``'s cache."""
    for _ in range(3):
        await auth.authenticate(bearer(secret))
    assert auth.cache, "the key was never cached"


async def _revoke(database: Database, key: Any) -> None:
    async with database.transaction() as session:
        await manage.revoke_key(session, await manage.key_in_tenant(session, key.tenant_id, key.id), "test")


async def _refused_every_time(auth: Authenticator, secret: str) -> None:
    for _ in range(ATTEMPTS):
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await auth.authenticate(bearer(secret))


async def _reset_by(action: str, server: PrivateRedis) -> None:
    if action == "flushdb":
        server.flushdb()
    else:
        server.restart()


@pytest.mark.parametrize("action", ["flushdb", "restart"])
async def test_revoked_with_redis_up_then_redis_loses_its_data(
    database: Database,
    processes: Factory,
    private_redis: PrivateRedis,  # noqa: F811
    action: str,
) -> None:
    revoker, holder = processes("a", private_redis.url), processes("b", private_redis.url)
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    await _cached(holder, secret)
    await _revoke(database, key)
    await revoker.invalidate()
    # The holder has not served the key since: its cache still has it, under the old epoch value.
    await _reset_by(action, private_redis)
    await _refused_every_time(holder, secret)
    # Once the epoch is back, a valid key is cached again: one look-up, then hits.
    other, _ = await seed_key(database, "acme", Role.SERVICE)
    await _cached(holder, other)


async def test_revoked_while_redis_is_down_then_redis_comes_back_empty(
    database: Database,
    processes: Factory,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    revoker = processes("a", private_redis.url)
    busy, idle = processes("b", private_redis.url), processes("c", private_redis.url)
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    await _cached(busy, secret)
    await _cached(idle, secret)
    private_redis.stop()
    await _revoke(database, key)
    await revoker.invalidate()  # cannot reach Redis: the revocation is only in the database
    await _refused_every_time(busy, secret)  # no epoch: verified against the database
    private_redis.start()
    await _refused_every_time(busy, secret)
    await _refused_every_time(idle, secret)  # never saw the outage, and never trusts its cache again


async def test_redis_back_with_its_data_after_a_revocation_nobody_could_announce(
    database: Database,
    processes: Factory,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    """A network cut, not a restart: Redis keeps the epoch value the idle process cached under.
    The process that saw Redis fail bumps the epoch when Redis answers again, before trusting its
    own cache, so the idle one re-verifies too."""
    proxy = RedisProxy(free_port(), target=("127.0.0.1", private_redis.port))
    await proxy.start()
    try:
        revoker = processes("a", proxy.url)
        busy, idle = processes("b", proxy.url), processes("c", proxy.url)
        secret, key = await seed_key(database, "acme", Role.SERVICE)
        await _cached(busy, secret)
        await _cached(idle, secret)
        await proxy.cut()
        await _revoke(database, key)
        await revoker.invalidate()
        await revoker.aclose()  # like the CLI: gone before Redis is back, its bump never made
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await busy.authenticate(bearer(secret))
        await proxy.start()
        await _refused_every_time(busy, secret)
        await _refused_every_time(idle, secret)
    finally:
        await proxy.cut()


async def test_a_failed_bump_is_retried_until_redis_answers(
    database: Database,
    processes: Factory,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    """The revoking process keeps its failed bump and delivers it in the background once Redis is
    back, even though nobody sends it a request."""
    proxy = RedisProxy(free_port(), target=("127.0.0.1", private_redis.port))
    await proxy.start()
    try:
        revoker, idle = processes("a", proxy.url), processes("c", proxy.url)
        secret, key = await seed_key(database, "acme", Role.SERVICE)
        await _cached(idle, secret)
        assert revoker.redis_epoch is not None
        epoch_key = revoker.redis_epoch.key
        before = private_redis.get(epoch_key)
        await proxy.cut()
        await _revoke(database, key)
        await revoker.invalidate()
        await proxy.start()

        async def delivered() -> bool:
            return private_redis.get(epoch_key) != before

        await _wait_async(delivered, "the bump was delivered")
        await _refused_every_time(idle, secret)
    finally:
        await proxy.cut()


async def _wait_async(predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    """Poll (bounded) while the event loop keeps running background work such as the retry."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.05)


async def test_file_epoch_deleted_and_recreated_is_followed(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Without Redis: the epoch file deleted under a running process and made again by another
    (the CLI) is noticed within ``FILE_RECHECK_S``, and its new generation is never mistaken for
    the old file's values."""
    settings = settings_for(database_url, tmp_path, auth={"cache_ttl_s": LONG_TTL_S})
    gateway = Authenticator(settings, database)
    try:
        secret, key = await seed_key(database, "acme", Role.SERVICE)
        await _cached(gateway, secret)
        path = gateway.file_epoch.path
        assert path is not None
        seen = gateway.file_epoch.read()
        os.unlink(path)
        await _revoke(database, key)
        cli = FileEpoch(path)  # a new file: counter 0 again, but a new generation
        cli.bump()
        assert cli.read() != seen
        cli.close()

        async def refused() -> bool:
            try:
                await gateway.authenticate(bearer(secret))
            except AuthenticationFailed:
                return True
            return False

        await _wait_async(refused, "the process follows the new epoch file", timeout_s=FILE_RECHECK_S * 5)
        await _refused_every_time(gateway, secret)
    finally:
        await gateway.aclose()
