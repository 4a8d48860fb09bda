"""The workers of one process: taskiq's ``Receiver`` takes job ids from the broker and runs each
attempt here, at most ``concurrency`` at a time.

An attempt: claim the row (conditional UPDATE: queued -> running, with a lease), run the kind's
handler in a task of its own while a watcher renews the lease and looks for a cancel request,
then record the outcome. The watcher stops the handler when the job was cancelled (it sets the
context's flag for handlers that check between items, then cancels the task) or when the lease
was lost (the sweeper gave the job to someone else: nothing more is written by this attempt).

Beside the receiver: the sweeper (expired leases, long-unclaimed jobs), the start-up reconciler
(hands every queued job out again) and, with the in-process broker, the table poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from bastion.config.work_settings import JobsSettings
from bastion.jobs.broker import JobBroker
from bastion.jobs.context import JobContext
from bastion.jobs.metrics import JOB_DURATION, JOB_FAILURES
from bastion.jobs.model import CANCELLED, FAILED, SUCCEEDED, JobCancelled, JobView
from bastion.jobs.registry import JobRegistry
from bastion.jobs.store import JobStore
from bastion.jobs.taskiq_import import AcknowledgeType, Receiver

log = structlog.get_logger("bastion.jobs")

#: Why the watcher stopped a handler.
_CANCELLED, _LOST = "cancelled", "lost"


def worker_name() -> str:
    """A lease owner's name: host, process and a random suffix (unique per pool)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _Watch:
    """The running attempt's shared state between the handler task and its watcher."""

    def __init__(self) -> None:
        self.reason: str | None = None


#: How long the receiver and sweeper get to end once cancelled before the broker's connections are
#: closed under them.
STOP_GRACE_S = 3.0


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        registry: JobRegistry,
        broker: JobBroker,
        settings: JobsSettings,
        concurrency: int,
        enqueue: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.store = store
        self.registry = registry
        self.broker = broker
        self.settings = settings
        self.concurrency = max(1, concurrency)
        self.enqueue = enqueue
        self.owner = worker_name()
        self.running: dict[str, asyncio.Task[Any]] = {}
        #: With the in-process broker: job ids handed to it and not started yet (no duplicates).
        self.pending: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._finish = asyncio.Event()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        # taskiq logs every delivery at INFO; job_started / job_ended say more, once.
        taskiq_log = logging.getLogger("taskiq")
        if taskiq_log.getEffectiveLevel() < logging.WARNING:
            taskiq_log.setLevel(logging.WARNING)
        self.broker.on_execute(self._delivered)
        self.broker.broker.is_worker_process = True
        receiver = Receiver(
            self.broker.broker,
            executor=None,
            validate_params=False,
            max_async_tasks=self.concurrency,
            propagate_exceptions=False,
            run_startup=False,
            ack_type=AcknowledgeType.WHEN_EXECUTED,
        )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._receive(receiver), name="jobs-receiver"))
        self._tasks.append(loop.create_task(self._sweep_loop(), name="jobs-sweeper"))
        if self.broker.local:
            self._tasks.append(loop.create_task(self._poll_loop(), name="jobs-poller"))
        log.info("job_workers_started", owner=self.owner, concurrency=self.concurrency, kinds=self.registry.kinds())

    async def stop(self) -> None:
        """Stop taking jobs; attempts under way are given back (queued again, the attempt not
        counted) and handed to the broker for another worker."""
        self._stopping = True
        self._finish.set()
        running = list(self.running.values())
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for task in self._tasks:
            task.cancel()
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
        if stuck:
            # A Redis read the cancellation did not reach (seen with a blocking XREADGROUP now and
            # then): closing the broker's connections ends the read, and with it the receiver.
            log.warning("job_workers_stop_forced", tasks=sorted(task.get_name() for task in stuck))
            with contextlib.suppress(Exception):
                await self.broker.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _receive(self, receiver: Receiver) -> None:
        while not self._finish.is_set():
            try:
                await self.broker.start()  # a no-op once started; after a failed start (Redis down), again
                await receiver.listen(self._finish)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker's connection failed: listen again after a pause
                log.warning("jobs_receiver_failed", error=_describe(exc)[:300])
                await asyncio.sleep(1.0)

    async def _delivered(self, job_id: str) -> None:
        self.pending.discard(job_id)
        if self._stopping or job_id in self.running:
            return
        task = asyncio.current_task()
        assert task is not None
        self.running[job_id] = task
        try:
            await self.execute(job_id)
        finally:
            self.running.pop(job_id, None)

    # -- background loops --------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        await self._guarded(self.reconcile, "jobs_reconcile_failed")
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            await self._guarded(self.sweep, "jobs_sweep_failed")

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            await self._guarded(self.poll, "jobs_poll_failed")

    @staticmethod
    async def _guarded(work: Callable[[], Awaitable[Any]], event: str) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database down or not migrated yet: next round
            log.warning(event, error=_describe(exc)[:300])

    async def reconcile(self) -> int:
        """At start: expired leases are swept, and every queued job is handed out again."""
        await self.sweep()
        queued = await self.store.claimable(self.registry.kinds(), limit=10_000)
        await self.enqueue(queued)
        if queued:
            log.info("jobs_reconciled", queued=len(queued))
        return len(queued)

    async def sweep(self) -> None:
        outcome = await self.store.sweep()
        for kind in outcome.failed_kinds:
            JOB_FAILURES.labels(kind=kind).inc()
        if outcome.requeued or outcome.failed_kinds or outcome.cancelled:
            log.warning(
                "jobs_leases_expired",
                requeued=len(outcome.requeued),
                failed=len(outcome.failed_kinds),
                cancelled=outcome.cancelled,
            )
        again = await self.store.unclaimed(self.settings.requeue_unclaimed_s, self.registry.kinds())
        await self.enqueue(outcome.requeued + again)

    async def poll(self) -> None:
        """In-process broker: queued jobs in the table that this process was not told about."""
        free = self.concurrency - len(self.running) - len(self.pending)
        if free <= 0:
            return
        ids = await self.store.claimable(self.registry.kinds(), limit=free + len(self.pending) + 10)
        fresh = [job_id for job_id in ids if job_id not in self.pending and job_id not in self.running]
        await self.enqueue(fresh[:free])

    # -- one attempt -------------------------------------------------------------------------------

    async def execute(self, job_id: str) -> str | None:
        """Claim and run one attempt of ``job_id``; the state it ended in, or None if not claimed."""
        s = self.settings
        job = await self.store.claim(job_id, self.owner, s.lease_ttl_s, self.registry.kinds())
        if job is None:
            return None
        kind = self.registry.get(job.kind)
        assert kind is not None
        ctx = JobContext(job, self.store, self.owner, s.lease_ttl_s)
        watch = _Watch()
        started = time.monotonic()
        handler = asyncio.get_running_loop().create_task(kind.handler(ctx), name=f"job-{job_id}")
        watcher = asyncio.get_running_loop().create_task(self._watch(ctx, handler, watch), name=f"job-watch-{job_id}")
        log.info("job_started", job_id=job_id, kind=job.kind, attempt=job.attempts)
        try:
            result = await handler
        except asyncio.CancelledError:
            if watch.reason is None:  # this worker is stopping: give the attempt back
                await self._give_back(ctx)
                raise
            outcome = await self._stopped(ctx, watch.reason)
        except JobCancelled:
            outcome = await self._end(ctx, CANCELLED)
        except Exception as exc:
            outcome = await self._failed(ctx, exc)
        else:
            outcome = await self._end(ctx, SUCCEEDED, result=result)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        JOB_DURATION.labels(kind=job.kind, outcome=outcome or _LOST).observe(time.monotonic() - started)
        log.info("job_ended", job_id=job_id, kind=job.kind, outcome=outcome or _LOST)
        return outcome

    async def _watch(self, ctx: JobContext, handler: asyncio.Task[Any], watch: _Watch) -> None:
        s = self.settings
        last_beat = time.monotonic()
        while not handler.done():
            await asyncio.sleep(s.cancel_poll_s)
            try:
                if ctx.cancel_requested:  # asked last round and still running: stop it now
                    watch.reason = _CANCELLED
                    handler.cancel()
                    return
                if time.monotonic() - last_beat >= s.heartbeat_interval_s:
                    last_beat = time.monotonic()
                    held = await self.store.heartbeat(ctx.id, self.owner, s.lease_ttl_s, ctx.done, ctx.total)
                    cancel = False
                else:
                    held, cancel = await self.store.watch(ctx.id, self.owner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database blip: keep going; a lasting one lets the lease expire
                log.warning("job_heartbeat_failed", job_id=ctx.id, error=_describe(exc)[:300])
                continue
            if not held:
                watch.reason = _LOST
                handler.cancel()
                log.warning("job_lease_lost", job_id=ctx.id)
                return
            if cancel:
                ctx.cancel_requested = True  # a handler checking between items stops by itself

    async def _end(self, ctx: JobContext, state: str, *, result: Any = None, error: str | None = None) -> str | None:
        ended = await self.store.finish(
            ctx.id,
            self.owner,
            state,
            result=result,
            result_ref=ctx.result_ref,
            error=error,
            done=ctx.done,
            total=ctx.total,
        )
        if not ended:
            return None
        if state == FAILED:
            JOB_FAILURES.labels(kind=ctx.job.kind).inc()
        return state

    async def _stopped(self, ctx: JobContext, reason: str) -> str | None:
        if reason == _LOST:
            return None
        return await self._end(ctx, CANCELLED)

    async def _failed(self, ctx: JobContext, exc: Exception) -> str | None:
        error = _describe(exc)
        log.warning("job_attempt_failed", job_id=ctx.id, kind=ctx.job.kind, attempt=ctx.attempt, error=error[:300])
        if ctx.attempt >= ctx.job.max_attempts:
            return await self._end(ctx, FAILED, error=error)
        if await self.store.release(ctx.id, self.owner, error=error, done=ctx.done):
            await self.enqueue([ctx.id])
            return "retried"
        return None

    async def _give_back(self, ctx: JobContext) -> None:
        with contextlib.suppress(Exception):
            released = await asyncio.shield(
                self.store.release(ctx.id, self.owner, error=None, count_attempt=False, done=ctx.done)
            )
            if released:
                await asyncio.shield(self.enqueue([ctx.id]))


def job_summary(job: JobView) -> str:
    done = f"{job.progress_done}/{job.progress_total}" if job.progress_total is not None else str(job.progress_done)
    return f"{job.id} {job.kind} {job.state} attempts={job.attempts}/{job.max_attempts} progress={done}"
