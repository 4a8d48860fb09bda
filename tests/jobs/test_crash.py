"""Crash test: a job of a few hundred items, each calling a counter (the side effect) and then
writing its result; the ``bastion worker`` running it is killed with SIGKILL half-way, and
another worker finishes it. Every item's result is stored exactly once, and the counter saw at
most (items + items in flight at the kill) calls.

Run on the embedded default (one SQLite file; the workers find the job by polling the table,
since the in-process broker cannot cross processes) and with PostgreSQL + Redis Streams + two
``bastion worker`` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.config.settings import Settings
from bastion.jobs.model import SUCCEEDED, JobView, NewJob
from bastion.jobs.service import JobService
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.jobs.crash_handlers import KIND, item_key
from tests.support.gateway import free_port, write_config
from tests.support.polling import wait_until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")
ITEMS = 300
#: Concurrency of each worker: one job, so at most one item of it is in flight per worker.
IN_FLIGHT_PER_WORKER = 1


class CounterServer:
    """Counts POST /count calls per item, in a thread of the test process."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with counter.lock:
                    counter.calls[body["item"]] += 1
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def total(self) -> int:
        with self.lock:
            return sum(self.calls.values())

    def __enter__(self) -> CounterServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counter() -> Iterator[CounterServer]:
    with CounterServer() as server:
        yield server


def _config(workdir: Path, database_url: str, redis_url: str | None) -> tuple[Path, Settings]:
    suffix = uuid.uuid4().hex[:8]
    config: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "database_url": database_url,
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "ledger": {"enabled": False},
        "logging": {"level": "info"},
        "jobs": {
            "handler_modules": ["tests.jobs.crash_handlers"],
            "lease_ttl_s": 2.0,
            "heartbeat_interval_s": 0.4,
            "cancel_poll_s": 0.2,
            "sweep_interval_s": 0.3,
            "poll_interval_s": 0.2,
            "redis_stream": f"bastion:test:jobs:{suffix}",
            "redis_group": f"test-workers-{suffix}",
        },
    }
    if redis_url:
        config["redis_url"] = redis_url
    path = write_config(workdir / "bastion.yaml", config)
    return path, Settings.model_validate(config)


def _db(settings: Settings) -> Database:
    return Database.from_settings(settings)


async def _submit(settings: Settings, payload: dict[str, Any]) -> str:
    db = _db(settings)
    try:
        await upgrade(db.engine)
        service = JobService.from_settings(settings, db, workers=0)
        await service.start()
        try:
            return (await service.submit(NewJob(KIND, payload=payload))).id
        finally:
            await service.stop()
    finally:
        await db.dispose()


async def _read(settings: Settings, job_id: str) -> tuple[JobView, list[str]]:
    db = _db(settings)
    try:
        service = JobService.from_settings(settings, db, workers=0)
        job = await service.get(job_id)
        items = [item.key for item in await service.items(job_id, limit=10_000)]
        return job, items
    finally:
        await db.dispose()


def _run_crash(
    workdir: Path, counter: CounterServer, database_url: str, redis_url: str | None, first_workers: int
) -> None:
    config, settings = _config(workdir, database_url, redis_url)
    job_id = asyncio.run(_submit(settings, {"items": ITEMS, "counter_url": counter.url, "delay_s": 0.005}))
    env = {"BASTION_DATA_DIR": str(workdir / "data")}
    workers = [WorkerProcess(config, workdir / f"worker-{i}.log", env) for i in range(first_workers)]
    try:
        # Half-way through: kill the worker holding the job's lease (its pid is in the owner name).
        wait_until(lambda: counter.total() >= ITEMS // 3, timeout_s=90, what="a third of the items ran")
        job, done_before = asyncio.run(_read(settings, job_id))
        assert job.lease_owner is not None, job
        holder_pid = int(job.lease_owner.split(":")[1])
        holder = next(w for w in workers if w.pid == holder_pid)
        holder.kill()
        killed_at = counter.total()
        assert killed_at < ITEMS, "the job finished before the kill; make the items slower"
        workers.remove(holder)
        workers.append(WorkerProcess(config, workdir / "worker-restarted.log", env))

        def finished() -> JobView | None:
            current, _ = asyncio.run(_read(settings, job_id))
            return current if current.finished else None

        try:
            job = wait_until(finished, timeout_s=120, interval_s=0.2, what="the job finished after the kill")
        except AssertionError:
            raise AssertionError("\n\n".join(w.tail() for w in workers)) from None
        _, stored = asyncio.run(_read(settings, job_id))
    finally:
        for worker in workers:
            worker.stop()
    assert job.state == SUCCEEDED, job
    assert job.attempts == 2 and job.progress_done == ITEMS
    assert sorted(stored) == [item_key(i) for i in range(ITEMS)]  # every item exactly once
    assert len(done_before) <= killed_at
    assert set(counter.calls) == set(stored)
    in_flight = IN_FLIGHT_PER_WORKER
    assert ITEMS <= counter.total() <= ITEMS + in_flight, counter.total()
    assert sum(1 for count in counter.calls.values() if count > 1) <= in_flight


def test_killed_worker_on_the_embedded_default(tmp_path: Path, counter: CounterServer) -> None:
    _run_crash(tmp_path, counter, f"sqlite:///{tmp_path / 'bastion.db'}", None, first_workers=1)


@pytest.mark.redis
def test_killed_worker_with_redis_and_postgresql(tmp_path: Path, counter: CounterServer, pg_database_url: str) -> None:
    _run_crash(tmp_path, counter, pg_database_url, REDIS_URL, first_workers=2)
