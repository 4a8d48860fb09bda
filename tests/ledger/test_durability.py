"""The issue's durability test: SIGKILL a real gateway under load, restart it, count.

A real ``bastion serve`` (on SQLite, then on PostgreSQL) answers concurrent requests, streamed and
not, from the fake upstream. The test keeps the ``x-request-id`` of every answer the client fully
received (the whole JSON body; for a stream, everything up to ``data: [DONE]``), kills the process
with SIGKILL mid-load, starts it again, and waits (bounded) until the ledger holds every one of
those ids exactly once.

The writer is slowed down (long flush interval) so that at the moment of the kill most answered
records exist only in the journal: the test then proves the replay, not the happy path.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.config.settings import Settings
from bastion.store.db import Database
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess, gateway_config, write_config
from tests.support.polling import wait_until

CONCURRENCY = 32
#: Answers to collect before the kill; requests keep flowing while it happens.
KILL_AFTER = 400
MODEL = "fake-ok"


def _ids_in_database(url: str) -> list[str]:
    async def query() -> list[str]:
        from sqlalchemy import text

        db = Database.from_settings(Settings(database_url=url))
        try:
            async with db.engine.connect() as connection:
                return [row[0] for row in await connection.execute(text("SELECT id FROM interactions"))]
        finally:
            await db.dispose()

    return asyncio.run(query())


async def _one(client: httpx.AsyncClient, i: int) -> str | None:
    """One request; its request id if the client received the complete answer, else None."""
    stream = i % 3 == 0
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": f"question {i}"}]}
    if stream:
        body["stream"] = True
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            payload = await response.aread()
            if response.status_code != 200:
                return None
            if stream and not payload.rstrip().endswith(b"data: [DONE]"):
                return None
            if not stream and not payload.rstrip().endswith(b"}"):
                return None
            return response.headers["x-request-id"]
    except httpx.HTTPError:
        return None  # the process died before the answer was complete


async def _load_and_kill(gateway: GatewayProcess) -> tuple[list[str], int]:
    answered: list[str] = []
    failed = 0
    stop = asyncio.Event()
    counter = iter(range(1_000_000))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not stop.is_set():
            rid = await _one(client, next(counter))
            if rid is None:
                failed += 1
                if stop.is_set() or failed > 50:
                    return
                continue
            answered.append(rid)
            if len(answered) >= KILL_AFTER and not stop.is_set():
                # Mid-load: the other workers have requests in flight right now.
                assert gateway.process is not None
                gateway.process.send_signal(signal.SIGKILL)
                stop.set()

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return answered, failed


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_sigkill_under_load_loses_no_answered_request(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    fake_upstream.reset()
    config = gateway_config(fake_upstream.base_url, tmp_path / "data", local=False, anthropic=False)
    config["database_url"] = database_url
    config["auto_migrate"] = True
    config["ledger"] = {"flush_interval_s": 5.0, "batch_size": 100_000}
    config["logging"] = {"level": "warning"}
    config_path = write_config(tmp_path / "bastion.yaml", config)
    journal = tmp_path / "data" / "journal"

    first = GatewayProcess(config_path, tmp_path / "first.log").start()
    try:
        answered, failed = asyncio.run(_load_and_kill(first))
        assert first.process is not None
        first.process.wait(timeout=10)
        assert first.process.returncode == -signal.SIGKILL
    finally:
        first.stop()
    assert len(answered) >= KILL_AFTER and len(set(answered)) == len(answered)
    assert any(journal.glob("*.jsonl")), "the dead process left its journal"
    before_restart = set(_ids_in_database(database_url))
    only_in_journal = len(set(answered) - before_restart)

    second = GatewayProcess(config_path, tmp_path / "second.log").start()
    try:

        def all_recorded() -> bool:
            return set(answered) <= set(_ids_in_database(database_url))

        wait_until(all_recorded, timeout_s=60, interval_s=0.2, what="every answered request in the ledger")
        ids = _ids_in_database(database_url)
        assert len(ids) == len(set(ids))  # and no duplicates
        # The dead process's segments were replayed and removed; the live one's remain.
        wait_until(lambda: len(list(journal.glob("*.jsonl"))) == 1, timeout_s=30, what="dead segments removed")
    finally:
        second.stop()
    # Graceful stop drains the live journal completely.
    assert list(journal.glob("*.jsonl")) == []
    print(
        f"\nanswered={len(answered)} failed_in_flight={failed} only_in_journal_at_kill={only_in_journal} "
        f"stored={len(ids)}"
    )
    assert only_in_journal > 0, "the kill came after everything was written: replay was not exercised"
