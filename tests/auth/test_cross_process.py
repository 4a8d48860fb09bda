"""Revocation across real gateway processes: a change made through one process (or the CLI) is
refused by every other process on its very next request, not after a cache TTL.

* two ``bastion serve`` processes sharing PostgreSQL and Redis (the auth epoch lives in Redis),
  also when Redis loses its data (``FLUSHDB``, a restart) or is down when the key is revoked;
* one process on the embedded SQLite database with no Redis, changed through the CLI, and one
  uvicorn server with two workers on SQLite (the epoch is a file beside the database).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.auth.support import bearer
from tests.support.cluster import Cluster, ClusterFactory, gateway_cluster, start_cluster  # noqa: F401
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import PrivateRedis, private_redis  # noqa: F401

REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "fake-ok"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
#: Auth cache's TTL in these tests: far longer than any test, so only the epoch can explain a refusal.
LONG_TTL_S = 3600


def cluster_config(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    deployment = {"provider": "openai", "model": MODEL, "id": MODEL, "api_base": fake.openai_base, "api_key": "x"}
    return {
        # /metrics without credentials: key_lookups reads it, and a credential would be a lookup itself.
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 2, "public_metrics": True},
        "models": [{"name": MODEL, "deployments": [deployment]}],
        "local": {"enabled": False, "embeddings_enabled": False},
        # Identity is under test; the other subsystems have suites of their own.
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "ledger": {"enabled": False},
        # A key of its own in the shared Redis, so parallel tests cannot bump each other's epoch.
        "auth": {"cache_ttl_s": LONG_TTL_S, "epoch_key": f"test:auth:epoch:{uuid.uuid4().hex}"},
        "logging": {"level": "info"},
        **extra,
    }


#: The cluster of the running test, so a request that hangs fails with the gateways' logs.
_CURRENT: list[Cluster] = []


def chat(http: httpx.Client, url: str, key: str) -> httpx.Response:
    try:
        return http.post(f"{url}/v1/chat/completions", json=CHAT, headers=bearer(key))
    except httpx.TimeoutException as exc:
        logs = _CURRENT[-1].log_tails() if _CURRENT else "(no cluster)"
        raise AssertionError(f"{url} did not answer in time ({exc!r}):\n{logs}") from None


def key_lookups(http: httpx.Client, url: str) -> float:
    """How many API keys this process has verified against the database (cache misses)."""
    response = http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text  # not a refusal read as "no lookups"
    match = re.search(r'^bastion_auth_cache_misses_total\{method="api_key"\} ([0-9.e+]+)$', response.text, re.M)
    return float(match.group(1)) if match else 0.0


def cli_ok(cluster: Cluster, *args: str) -> str:
    result = cluster.cli(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.mark.redis
def test_revocation_through_one_process_is_refused_by_the_other(
    gateway_cluster: ClusterFactory,  # noqa: F811
    pg_database_url: str,
    fake_upstream: FakeUpstream,
) -> None:
    cluster = gateway_cluster(
        cluster_config(fake_upstream), processes=2, database_url=pg_database_url, redis_url=REDIS_URL
    )
    _CURRENT.append(cluster)
    a, b = cluster.urls
    admin = cluster.create_key("acme", "admin")
    service = cluster.create_key("acme", "service")
    with httpx.Client(timeout=30) as http:
        for url in (a, b):
            for _ in range(3):
                assert chat(http, url, service["key"]).status_code == 200, cluster.log_tails()
        # The key is cached in B: three requests, one database look-up.
        assert key_lookups(http, b) == 1
        revoked = http.post(f"{a}/api/v1/admin/keys/{service['id']}/revoke", headers=bearer(admin["key"]))
        assert revoked.status_code == 200, revoked.text
        refused = chat(http, b, service["key"])
        assert refused.status_code == 401, refused.text
        assert "revoked" in refused.json()["error"]["message"]
        assert chat(http, a, service["key"]).status_code == 401

        # Disabling a user through B refuses the user's keys in A at once.
        cli_ok(cluster, "users", "create", "--tenant", "acme", "--email", "dev@acme.io", "--role", "developer")
        owned = cluster.create_key("acme", "developer", user="dev@acme.io")
        assert chat(http, a, owned["key"]).status_code == 200
        user_id = owned["user_id"]
        disabled = http.patch(
            f"{b}/api/v1/admin/users/{user_id}", json={"disabled": True}, headers=bearer(admin["key"])
        )
        assert disabled.status_code == 200, disabled.text
        assert chat(http, a, owned["key"]).status_code == 401

        # The CLI notifies running gateways too.
        other = cluster.create_key("acme", "service")
        assert chat(http, a, other["key"]).status_code == 200
        assert chat(http, b, other["key"]).status_code == 200
        cli_ok(cluster, "keys", "revoke", other["prefix"], "--tenant", "acme")
        assert chat(http, a, other["key"]).status_code == 401
        assert chat(http, b, other["key"]).status_code == 401


def test_revocations_survive_redis_losing_its_data(
    gateway_cluster: ClusterFactory,  # noqa: F811
    pg_database_url: str,
    fake_upstream: FakeUpstream,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    """A key cached in B and revoked through A stays refused by B (five times in a row) after a
    FLUSHDB, after Redis restarts empty, and when it was revoked while Redis was down. The Redis is
    the test's own: it is flushed and restarted."""
    cluster = gateway_cluster(
        cluster_config(fake_upstream), processes=2, database_url=pg_database_url, redis_url=private_redis.url
    )
    _CURRENT.append(cluster)
    a, b = cluster.urls
    admin = cluster.create_key("acme", "admin")
    with httpx.Client(timeout=30) as http:

        def cached_in_b() -> dict[str, Any]:
            key = cluster.create_key("acme", "service")
            for _ in range(3):
                assert chat(http, b, key["key"]).status_code == 200, cluster.log_tails()
            return key

        def revoke_through_a(key: dict[str, Any]) -> None:
            revoked = http.post(f"{a}/api/v1/admin/keys/{key['id']}/revoke", headers=bearer(admin["key"]))
            assert revoked.status_code == 200, revoked.text

        def refused_by_b(key: dict[str, Any]) -> None:
            assert [chat(http, b, key["key"]).status_code for _ in range(5)] == [401] * 5

        flushed = cached_in_b()
        revoke_through_a(flushed)
        private_redis.flushdb()
        refused_by_b(flushed)

        restarted = cached_in_b()
        revoke_through_a(restarted)
        private_redis.restart()
        refused_by_b(restarted)

        during_outage = cached_in_b()
        private_redis.stop()
        revoke_through_a(during_outage)  # only the database knows: the bump cannot be made
        private_redis.start()
        refused_by_b(during_outage)

        valid = cached_in_b()  # and the caches work again
        assert chat(http, b, valid["key"]).status_code == 200


def test_cli_revocation_reaches_a_sqlite_gateway_without_redis(
    gateway_cluster: ClusterFactory,  # noqa: F811
    fake_upstream: FakeUpstream,
) -> None:
    cluster = gateway_cluster(cluster_config(fake_upstream), processes=1)
    _CURRENT.append(cluster)
    [url] = cluster.urls
    key = cluster.create_key("acme", "service")
    with httpx.Client(timeout=30) as http:
        assert chat(http, url, key["key"]).status_code == 200
        assert chat(http, url, key["key"]).status_code == 200
        assert key_lookups(http, url) == 1
        cli_ok(cluster, "keys", "revoke", key["id"])
        refused = chat(http, url, key["key"])
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


@pytest.mark.integration
def test_workers_of_one_server_share_revocations(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    """``server.workers: 2`` on SQLite, no Redis: whichever worker answers, a key revoked through
    the admin API of one worker is refused by both on the next request."""
    workdir = tmp_path / "workers"
    database = workdir / "bastion.db"
    workdir.mkdir()

    async def migrate() -> None:  # before the workers start, so they do not race to create tables
        db = Database.from_settings(Settings(), f"sqlite+aiosqlite:///{database}")
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    config = cluster_config(fake_upstream, server={"host": "127.0.0.1", "workers": 2, "graceful_shutdown_s": 2})
    cluster = start_cluster(config, workdir, processes=1, database_url=f"sqlite:///{database}")
    try:
        [url] = cluster.urls
        admin = cluster.create_key("acme", "admin")
        service = cluster.create_key("acme", "service")
        with httpx.Client(timeout=30) as http:
            # New connections each time, so the kernel spreads them over both workers.
            for _ in range(20):
                response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=bearer(service["key"]))
                assert response.status_code == 200, cluster.log_tails()
            revoked = http.post(f"{url}/api/v1/admin/keys/{service['id']}/revoke", headers=bearer(admin["key"]))
            assert revoked.status_code == 200
            statuses = {
                httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=bearer(service["key"])).status_code
                for _ in range(20)
            }
            assert statuses == {401}
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(fake_upstream: FakeUpstream) -> Iterator[None]:
    fake_upstream.reset()
    yield
    _CURRENT.clear()
