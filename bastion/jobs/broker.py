"""Handing job ids to workers, on taskiq.

The message is only a wake-up call ("look at job X"): the job table says what the job is and who
holds it, so a message delivered twice, late, or to a worker that cannot run it does no harm.

- Embedded default: ``LocalBroker``, an in-process queue behind taskiq's broker interface. It
  cannot cross processes, so workers also poll the job table (``jobs.poll_interval_s``) for what
  other processes (the CLI, another ``bastion worker``) queued.
- ``redis_url`` set: taskiq-redis's ``RedisStreamBroker`` (a consumer group on one stream,
  acknowledged after the job's attempt ends; unacknowledged messages of a dead consumer are
  claimed again by another).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from bastion.config.work_settings import JobsSettings
from bastion.jobs.taskiq_import import AsyncBroker, AsyncTaskiqDecoratedTask, BrokerMessage

#: The one taskiq task: run (an attempt of) the job whose id it carries.
EXECUTE_TASK = "bastion.jobs.execute"
#: Stream entries kept (approximately); older ones are trimmed.
STREAM_MAXLEN = 100_000


class LocalBroker(AsyncBroker):
    """An in-process queue: what ``kick`` puts in, ``listen`` yields, in order."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[bytes] | None = None

    def _q(self) -> asyncio.Queue[bytes]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    async def kick(self, message: BrokerMessage) -> None:
        self._q().put_nowait(message.message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        queue = self._q()
        while True:
            yield await queue.get()


def make_broker(settings: JobsSettings, redis_url: str | None) -> AsyncBroker:
    if not redis_url:
        return LocalBroker()
    from taskiq_redis import RedisStreamBroker

    lease_ms = int(settings.lease_ttl_s * 1000)
    return RedisStreamBroker(
        redis_url,
        queue_name=settings.redis_stream,
        consumer_group_name=settings.redis_group,
        # From the stream's start: a message added before any worker made the group is not lost.
        consumer_id="0",
        xread_block=1000,
        maxlen=STREAM_MAXLEN,
        # A message a dead worker took is delivered again after twice the lease (the sweeper has
        # usually re-queued its job by then; the claim decides who runs it).
        idle_timeout=2 * lease_ms,
        unacknowledged_lock_timeout=max(1.0, settings.lease_ttl_s),
        xread_count=1,
        socket_connect_timeout=2.0,
    )


class JobBroker:
    """The process's taskiq broker with Bastion's one task registered on it."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self._execute: Callable[[str], Awaitable[None]] | None = None

        async def execute_job(job_id: str) -> None:  # a plain function: taskiq renames what it registers
            if self._execute is not None:
                await self._execute(job_id)

        task: Any = broker.register_task(execute_job, task_name=EXECUTE_TASK)  # (its stubs expect a sync function)
        self.task: AsyncTaskiqDecoratedTask[[str], None] = task
        self._started = False
        self._closed = False

    @property
    def local(self) -> bool:
        """True: messages reach only this process's workers."""
        return isinstance(self.broker, LocalBroker)

    def on_execute(self, execute: Callable[[str], Awaitable[None]]) -> None:
        """What a worker in this process does with a delivered job id."""
        self._execute = execute

    async def start(self) -> None:
        """Start the broker (Redis: make the consumer group); raises if it cannot be reached."""
        if not self._started:
            self._closed = False
            await self.broker.startup()
            self._started = True

    async def stop(self) -> None:
        """Close the broker's connections (also after a failed start); once: the workers close it
        early when a read ignores their cancellation, and the jobs service closes it at the end."""
        if self._closed:
            return
        self._started = False
        self._closed = True
        await self.broker.shutdown()

    async def kick(self, job_id: str) -> None:
        await self.task.kiq(job_id)

    def describe(self) -> dict[str, Any]:
        return {"broker": type(self.broker).__name__}
