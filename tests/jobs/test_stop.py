"""Stopping the workers never hangs on the broker: a read that a cancellation does not reach (as a
blocking Redis read now and then does) is ended by closing the broker's connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from bastion.jobs.broker import JobBroker, LocalBroker
from bastion.jobs.registry import JobRegistry
from bastion.jobs.runner import STOP_GRACE_S, WorkerPool
from bastion.jobs.store import JobStore
from bastion.store.db import Database
from tests.jobs.support import fast_settings


class StubbornBroker(LocalBroker):
    """``listen`` waits for a message and swallows cancellation; only ``shutdown`` (closing the
    connections) ends the wait, as closing a socket ends a read on it."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()
        self.cancellations_ignored = 0
        self.listening = asyncio.Event()
        self.shutdowns = 0

    async def listen(self) -> AsyncGenerator[bytes, None]:
        self.listening.set()
        while not self.closed.is_set():
            try:
                await self.closed.wait()
            except asyncio.CancelledError:
                self.cancellations_ignored += 1
        raise ConnectionError("connection closed")
        yield b""  # pragma: no cover - makes this an async generator

    async def shutdown(self) -> None:
        self.shutdowns += 1
        self.closed.set()
        await super().shutdown()


async def test_stop_closes_the_broker_under_a_read_that_ignores_cancellation(database: Database) -> None:
    broker = StubbornBroker()
    job_broker = JobBroker(broker)
    pool = WorkerPool(JobStore(database), JobRegistry(), job_broker, fast_settings(), 1, _no_enqueue)
    await pool.start()
    await asyncio.wait_for(broker.listening.wait(), 10)
    started = time.monotonic()
    await asyncio.wait_for(pool.stop(), STOP_GRACE_S + 10)
    took = time.monotonic() - started
    assert broker.cancellations_ignored >= 1  # the cancellation reached the read and was swallowed
    assert broker.closed.is_set()  # so the pool closed the broker's connections
    assert STOP_GRACE_S * 0.9 <= took < STOP_GRACE_S + 5
    await job_broker.stop()  # what the jobs service does next: the connections are closed once
    assert broker.shutdowns == 1


async def _no_enqueue(job_ids: list[str]) -> None:
    del job_ids
