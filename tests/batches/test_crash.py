"""Crash test: a batch of a few hundred lines runs in ``bastion worker`` processes; the worker
holding it is killed with SIGKILL in the middle, another one finishes it. Every ``custom_id``
appears exactly once in the results, and the upstream saw at most (lines + lines in flight at the
kill) calls.

The batch is made with the unmodified ``openai`` SDK against a real ``bastion serve`` that runs no
jobs itself (``jobs.inprocess_workers: 0``). Run on the embedded default (one SQLite file; the
workers find the job by polling the table) and with PostgreSQL + Redis Streams + two workers.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

from bastion.config.settings import Settings
from bastion.jobs.service import JobService
from bastion.store.db import Database
from tests.batches.support import CHAT, CHAT_MODEL, CHAT_UPSTREAM, chat_jsonl, read_jsonl
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway import GatewayProcess, write_config
from tests.support.polling import wait_until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")
LINES = 300
#: Lines of one batch in flight at once (``batches.concurrency``): what a kill can repeat.
CONCURRENCY = 4


def _config(workdir: Path, fake: FakeUpstream, database_url: str, redis_url: str | None) -> tuple[Path, Settings]:
    suffix = uuid.uuid4().hex[:8]
    deployment = {"provider": "openai", "model": CHAT_UPSTREAM, "api_base": fake.openai_base, "api_key": "k"}
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 2},
        "data_dir": str(workdir / "data"),
        "database_url": database_url,
        "models": [{"name": CHAT_MODEL, "deployments": [deployment]}],
        "router": {"retries": 0},
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "logging": {"level": "info"},
        "batches": {"concurrency": CONCURRENCY, "status_poll_s": 0.2},
        "jobs": {
            "inprocess_workers": 0,
            "lease_ttl_s": 2.0,
            "heartbeat_interval_s": 0.4,
            "cancel_poll_s": 0.2,
            "sweep_interval_s": 0.3,
            "poll_interval_s": 0.2,
            "redis_stream": f"bastion:test:batches:{suffix}",
            "redis_group": f"test-batch-workers-{suffix}",
        },
    }
    if redis_url:
        config["redis_url"] = redis_url
    return write_config(workdir / "bastion.yaml", config), Settings.model_validate(config)


async def _lease_owner(settings: Settings, job_id: str) -> str | None:
    db = Database.from_settings(settings)
    try:
        return (await JobService.from_settings(settings, db, workers=0).get(job_id)).lease_owner
    finally:
        await db.dispose()


def _job_id(settings: Settings, batch_id: str) -> str:
    async def read() -> str:
        db = Database.from_settings(settings)
        try:
            from bastion.batches.store import BatchStore

            view = await BatchStore(db).load(batch_id)
            assert view is not None
            return view.job_id
        finally:
            await db.dispose()

    return asyncio.run(read())


def _run_crash(
    workdir: Path, fake: FakeUpstream, database_url: str, redis_url: str | None, workers_at_start: int
) -> None:
    fake.default(CHAT_UPSTREAM, Behaviour.parse("ok:0.04"))
    config, settings = _config(workdir, fake, database_url, redis_url)
    env = {"BASTION_DATA_DIR": str(workdir / "data")}
    gateway = GatewayProcess(config, workdir / "gateway.log", env=env).start()
    workers: list[WorkerProcess] = []
    try:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as client:
            uploaded = client.files.create(file=("in.jsonl", chat_jsonl(LINES)), purpose="batch")
            batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
            job_id = _job_id(settings, batch.id)
            workers = [WorkerProcess(config, workdir / f"worker-{i}.log", env) for i in range(workers_at_start)]
            wait_until(lambda: len(fake.requests(CHAT_UPSTREAM)) >= LINES // 3, timeout_s=90, what="a third ran")
            owner = asyncio.run(_lease_owner(settings, job_id))
            assert owner is not None
            holder = next(w for w in workers if w.pid == int(owner.split(":")[1]))
            holder.kill()
            killed_at = len(fake.requests(CHAT_UPSTREAM))
            assert killed_at < LINES, "the batch finished before the kill; make the lines slower"
            workers.remove(holder)
            workers.append(WorkerProcess(config, workdir / "worker-restarted.log", env))

            def ended() -> Any:
                current = client.batches.retrieve(batch.id)
                return current if current.status in ("completed", "failed", "expired", "cancelled") else None

            try:
                done = wait_until(ended, timeout_s=120, interval_s=0.2, what="the batch ended after the kill")
            except AssertionError:
                raise AssertionError("\n\n".join([gateway.log_tail(), *(w.tail() for w in workers)])) from None
            assert done.status == "completed", done
            assert done.output_file_id and done.error_file_id is None
            assert done.request_counts is not None and done.request_counts.completed == LINES
            output = read_jsonl(client.files.content(done.output_file_id).content)
    finally:
        for worker in workers:
            worker.stop()
        gateway.stop()
    custom_ids = Counter(line["custom_id"] for line in output)
    assert sorted(custom_ids) == sorted(f"req-{i}" for i in range(LINES))
    assert set(custom_ids.values()) == {1}  # every custom_id exactly once
    calls = Counter(str(r.body["messages"][0]["content"]) for r in fake.requests(CHAT_UPSTREAM))
    assert LINES <= sum(calls.values()) <= LINES + CONCURRENCY, sum(calls.values())
    assert sum(1 for count in calls.values() if count > 1) <= CONCURRENCY


def test_a_killed_worker_mid_batch_on_the_embedded_default(tmp_path: Path, fake: FakeUpstream) -> None:
    _run_crash(tmp_path, fake, f"sqlite:///{tmp_path / 'bastion.db'}", None, workers_at_start=1)


@pytest.mark.redis
def test_a_killed_worker_mid_batch_with_redis_postgresql_and_two_workers(
    tmp_path: Path, fake: FakeUpstream, pg_database_url: str
) -> None:
    _run_crash(tmp_path, fake, pg_database_url, REDIS_URL, workers_at_start=2)
