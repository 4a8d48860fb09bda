"""The Redis store: the same contract as the memory store, shared by every gateway process.

Admission is one EVALSHA of ``scripts.ADMIT`` (one round trip, pipelined with other requests'
admissions); settlement is one EVALSHA of ``scripts.SETTLE`` queued to a background settler that
pipelines them and retries while Redis is unreachable, so the answer never waits for it.
NOSCRIPT (Redis restarted or flushed its script cache) loads the script and retries once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis.exceptions import NoScriptError

from bastion.limits.channel import RedisChannel
from bastion.limits.metrics import SETTLEMENTS_DROPPED
from bastion.limits.plan import (
    WINDOW_S,
    Admission,
    BudgetCharge,
    Decision,
    Outcome,
    RateReport,
    most_constraining,
)
from bastion.limits.scripts import ADMIT, ADMIT_SHA, SETTLE, SETTLE_SHA

log = structlog.get_logger("bastion.limits")

_US = 1_000_000


class RedisStore:
    def __init__(
        self,
        channel: RedisChannel,
        *,
        reservation_ttl_s: float = 900.0,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.channel = channel
        self.window_s = window_s
        self._window_us = str(int(window_s * _US))
        self._hold_us = str(int(reservation_ttl_s * _US))
        #: Tests inject a clock (seconds); in production the scripts read Redis's own TIME.
        self._clock = clock
        self.settler = Settler(channel, max_age_s=reservation_ttl_s)

    async def start(self) -> None:
        self.settler.start()

    async def stop(self) -> None:
        await self.settler.stop()

    # -- admission ------------------------------------------------------------------------------

    def _admit_command(self, admission: Admission) -> list[Any]:
        keys: list[str] = []
        args: list[Any] = [
            "" if self._clock is None else str(int(self._clock() * _US)),
            admission.request_id,
            len(admission.request_rules),
            len(admission.token_rules),
            len(admission.charges),
            self._window_us,
            admission.tokens,
            self._hold_us,
        ]
        for rule in admission.request_rules:
            keys.append(rule.requests_key)
            args.append(rule.rpm)
        for rule in admission.token_rules:
            keys.append(rule.tokens_key)
            keys.append(rule.tokens_sum_key)
            args.append(rule.tpm)
        for charge in admission.charges:
            keys.append(charge.key)
            keys.append(charge.key + ":r")
            keys.append(charge.key + ":rs")
            args.append(charge.rule.limit_micros)
            args.append(charge.estimate)
            args.append(charge.expire_at)
        return ["EVALSHA", ADMIT_SHA, len(keys), *keys, *args]

    async def admit(self, admission: Admission) -> Decision:
        command = self._admit_command(admission)
        reply = await self._call_script(command, ADMIT)
        return self._decision(admission, reply)

    async def _call_script(self, command: list[Any], script: str) -> Any:
        future = self.channel.submit(command)
        try:
            # Shielded: if the caller is cancelled (client gone) after the script ran, the
            # admission still gets released below instead of holding its reservation.
            return await asyncio.shield(future)
        except NoScriptError:
            await self.channel.call("SCRIPT", "LOAD", script)
            return await self.channel.call(*command)
        except asyncio.CancelledError:
            future.add_done_callback(self._release_orphan(command))
            raise

    def _release_orphan(self, command: list[Any]) -> Callable[[asyncio.Future[Any]], None]:
        def release(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                return
            reply = future.result()
            if command[0] == "EVALSHA" and command[1] == ADMIT_SHA and reply and int(reply[0]) == Outcome.ADMITTED:
                self.settler.put(_settle_from_admit_command(command))

        return release

    def _decision(self, admission: Admission, reply: list[Any]) -> Decision:
        outcome = Outcome(int(reply[0]))
        index = int(reply[1]) - 1
        if outcome is Outcome.ADMITTED:
            requests: RateReport | None = None
            tokens: RateReport | None = None
            position = 3
            for rule in admission.request_rules:
                count, reset_us = int(reply[position]), int(reply[position + 1])
                position += 2
                limit = rule.rpm or 0
                requests = most_constraining(requests, RateReport(limit, limit - count - 1, reset_us / _US))
            for rule in admission.token_rules:
                used, reset_us = int(reply[position]), int(reply[position + 1])
                position += 2
                limit = rule.tpm or 0
                tokens = most_constraining(tokens, RateReport(limit, limit - used - admission.tokens, reset_us / _US))
            return Decision(outcome, requests=requests, tokens=tokens, store=self)
        if outcome is Outcome.REQUESTS:
            retry = int(reply[2]) / _US
            report = RateReport(admission.request_rules[index].rpm or 0, 0, retry)
            return Decision(outcome, index, retry, requests=report, store=self)
        if outcome in (Outcome.TOKENS, Outcome.TOKENS_TOO_LARGE):
            retry = int(reply[2]) / _US
            limit = admission.token_rules[index].tpm or 0
            report = RateReport(limit, max(0, limit - int(reply[3])), retry)
            return Decision(outcome, index, retry, tokens=report, store=self)
        if outcome is Outcome.BUDGET:
            return Decision(outcome, index, spent=int(reply[3]), reserved=int(reply[4]), store=self)
        return Decision(outcome, missing=[int(i) - 1 for i in reply[3:]], store=self)

    # -- seeding and settlement -----------------------------------------------------------------

    async def seed(self, values: Sequence[tuple[BudgetCharge, int]]) -> None:
        """Create missing window counters; NX so a counter another process created first wins."""
        commands = [("SET", charge.key, spent, "NX", "EXAT", charge.expire_at) for charge, spent in values]
        for reply in await self.channel.call_many(commands):
            if isinstance(reply, Exception):
                raise reply

    def settle(self, admission: Admission, actual_tokens: int, actual_micros: int) -> None:
        if not admission.token_rules and not admission.charges:
            return  # request logs need no settlement
        keys: list[str] = []
        args: list[Any] = [
            admission.request_id,
            len(admission.token_rules),
            len(admission.charges),
            admission.tokens,
            actual_tokens,
        ]
        for rule in admission.token_rules:
            keys.append(rule.tokens_key)
            keys.append(rule.tokens_sum_key)
        for charge in admission.charges:
            keys.append(charge.key)
            keys.append(charge.key + ":r")
            keys.append(charge.key + ":rs")
            args.append(charge.estimate)
            args.append(actual_micros)
        self.settler.put(["EVALSHA", SETTLE_SHA, len(keys), *keys, *args])


def _settle_from_admit_command(command: list[Any]) -> list[Any]:
    """The settlement (nothing used, nothing spent) of an admission whose caller went away."""
    numkeys = int(command[2])
    keys = command[3 : 3 + numkeys]
    args = command[3 + numkeys :]
    request_id, n_requests, n_tokens, n_budgets, tokens = args[1], int(args[2]), int(args[3]), int(args[4]), args[6]
    token_keys = keys[n_requests : n_requests + 2 * n_tokens]
    budget_keys = keys[n_requests + 2 * n_tokens :]
    budget_args = args[8 + n_requests + n_tokens :]
    settle_args: list[Any] = [request_id, n_tokens, n_budgets, tokens, 0]
    for i in range(n_budgets):
        settle_args.append(budget_args[3 * i + 1])
        settle_args.append(0)
    all_keys = [*token_keys, *budget_keys]
    return ["EVALSHA", SETTLE_SHA, len(all_keys), *all_keys, *settle_args]


class Settler:
    """Sends settlements in the background, pipelined, retrying while Redis is unreachable.

    A settlement is given up (and counted) only once it is older than a reservation lives: by then
    Redis has released the reservation by itself, and only the spend and token correction are lost.
    """

    def __init__(self, channel: RedisChannel, *, max_age_s: float, max_batch: int = 512) -> None:
        self.channel = channel
        self.max_age_s = max_age_s
        self.max_batch = max_batch
        self._queue: deque[tuple[float, list[Any]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, command: list[Any]) -> None:
        self._queue.append((time.monotonic(), command))
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until every queued settlement has been applied; True if it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if not await self.drain(timeout_s) and self._queue:
            log.warning("limits_settlements_unsent", count=len(self._queue))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._queue:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            try:
                failed = await self._send_batch()
            except Exception:  # never let the settler die: what it holds would be lost
                log.exception("limits_settler_failed")
                failed = True
            if not failed:
                backoff = 0.05
                continue
            if self._stopping:
                self._idle.set()  # Redis is down at shut-down: do not hold the exit
                return
            # Back off while Redis is unreachable (bounded), then try again.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _send_batch(self) -> bool:
        """Send up to ``max_batch`` settlements; requeue the failed ones. True if any failed."""
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        replies = await self.channel.call_many([command for _, command in batch])
        failed = [(item, reply) for item, reply in zip(batch, replies, strict=True) if isinstance(reply, Exception)]
        if not failed:
            return False
        if any(isinstance(reply, NoScriptError) for _, reply in failed):
            # Redis lost its scripts (restart, SCRIPT FLUSH): requeue first (the load may fail
            # too), then load and resend at once.
            self._queue.extendleft(reversed([item for item, _ in failed]))
            await self.channel.call("SCRIPT", "LOAD", SETTLE)
            return False
        now = time.monotonic()
        kept = [item for item, _ in failed if now - item[0] < self.max_age_s]
        if len(kept) < len(failed):
            SETTLEMENTS_DROPPED.inc(len(failed) - len(kept))
        self._queue.extendleft(reversed(kept))
        log.warning("limits_settle_retry", failed=len(failed), error=str(failed[0][1])[:200])
        return True
