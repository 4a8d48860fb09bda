"""The connection pool is sized from config and every path gives its connection back.

A small pool (2 connections, no overflow, a short checkout timeout) under many concurrent admin
calls that succeed, fail validation, miss, or are refused: if any path held on to a connection,
later calls would time out waiting for the pool, and the pool would not be empty at the end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.pool import QueuePool

from bastion.auth.principal import Role
from bastion.store.db import Database
from tests.auth.support import bearer, seed_key, settings_for
from tests.support.harness import running_gateway

CALLS = 240


async def test_pool_size_comes_from_config_and_no_connection_leaks(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(
        database_url, tmp_path / "data", database={"pool_size": 2, "max_overflow": 0, "pool_timeout_s": 5}
    )
    admin, _ = await seed_key(database, "acme", Role.ADMIN)
    viewer, _ = await seed_key(database, "acme", Role.VIEWER)
    calls = [
        ("GET", "/api/v1/admin/keys", admin, None, 200),
        ("POST", "/api/v1/admin/users", admin, {"email": "not-an-email", "role": "developer"}, 400),
        ("GET", "/api/v1/admin/keys/no-such-key", admin, None, 404),
        ("POST", "/api/v1/admin/keys", viewer, {"role": "service"}, 403),
        ("GET", "/api/v1/admin/audit", admin, None, 200),
        ("GET", "/api/v1/admin/keys", "bst_malformed", None, 401),
    ]
    async with running_gateway(settings, stages=[], start=False) as running:

        async def one(i: int) -> tuple[int, int]:
            method, path, key, body, expected = calls[i % len(calls)]
            response = await running.client.request(method, path, headers=bearer(key), json=body)
            return response.status_code, expected

        results = await asyncio.gather(*(one(i) for i in range(CALLS)))
        assert [got for got, expected in results if got != expected] == []
        pool = running.gateway.db.engine.pool
        assert isinstance(pool, QueuePool), pool  # SQLite file databases and PostgreSQL both pool
        assert pool.size() == 2
        assert pool.checkedout() == 0, "a connection was never returned to the pool"
