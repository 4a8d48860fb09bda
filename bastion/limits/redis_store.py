"""The Redis store: the same contract as the memory store, shared by every gateway process.

Admission is one EVALSHA of ``scripts.ADMIT`` (one round trip, pipelined with other requests'
admissions); settlement is one EVALSHA of ``scripts.SETTLE`` queued to a background settler that
pipelines them and retries while Redis is unreachable, so the answer never waits for it.
NOSCRIPT (Redis restarted or flushed its script cache) loads the script and retries once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis.exceptions import NoScriptError

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
from bastion.store.channel import RedisChannel

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
        release = functools.partial(self._release_orphan, command)
        try:
            reply = await self.channel.submit(command, urgent=True, on_orphan=release)
        except NoScriptError:
            await self.channel.call("SCRIPT", "LOAD", ADMIT)
            reply = await self.channel.submit(command, urgent=True, on_orphan=release)
        return self._decision(admission, reply)

    def _release_orphan(self, command: list[Any], reply: Any) -> None:
        """The caller was cancelled (client gone) but the script ran: if it admitted the request,
        settle it as unused, so its reservation and token estimate do not linger."""
        if isinstance(reply, list) and reply and int(reply[0]) == Outcome.ADMITTED:
            self.settler.put(_settle_from_admit_command(command))

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
    """Applies settlements in the background, retrying while Redis is unreachable.

    A settlement is submitted at once (it shares the next write to Redis, usually the next
    admission's) and checked by a callback: no task or await per settlement. Failed ones go to a
    retry queue worked by a task with back-off. A settlement is given up (and counted) only once it
    is older than a reservation lives: by then Redis has released the reservation by itself, and
    only the spend and token correction are lost.
    """

    def __init__(self, channel: RedisChannel, *, max_age_s: float) -> None:
        self.channel = channel
        self.max_age_s = max_age_s
        self._in_flight = 0
        self._retry: deque[tuple[float, list[Any]]] = deque()
        self._need_script = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, command: list[Any], queued_at: float | None = None) -> None:
        self._in_flight += 1
        self._idle.clear()
        future = self.channel.submit(command)
        future.add_done_callback(functools.partial(self._done, queued_at or time.monotonic(), command))

    def _done(self, queued_at: float, command: list[Any], future: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        error = ConnectionError("settlement cancelled") if future.cancelled() else future.exception()
        if error is not None:
            if isinstance(error, NoScriptError):
                self._need_script = True
            self._retry.append((queued_at, command))
            self._wake.set()
        elif not self._in_flight and not self._retry:
            self._idle.set()

    @property
    def pending(self) -> int:
        return self._in_flight + len(self._retry)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until every settlement has been applied; True if it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout_s: float = 5.0) -> None:
        if not await self.drain(timeout_s):
            log.warning("limits_settlements_unsent", count=self.pending)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._retry:
                try:
                    if self._need_script:
                        # Redis lost its scripts (restart, SCRIPT FLUSH): load, then resend.
                        await self.channel.call("SCRIPT", "LOAD", SETTLE)
                        self._need_script = False
                    else:
                        # Wait for Redis to answer again (bounded back-off) before resending.
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
                        await self.channel.call("PING")
                except Exception as exc:
                    log.warning("limits_settle_retry", pending=len(self._retry), error=f"{type(exc).__name__}: {exc}")
                    continue
                backoff = 0.05
                self._resend()
            if not self._in_flight and not self._retry:
                self._idle.set()

    def _resend(self) -> None:
        now = time.monotonic()
        items, self._retry = self._retry, deque()
        kept = [(at, command) for at, command in items if now - at < self.max_age_s]
        if len(kept) < len(items):
            SETTLEMENTS_DROPPED.inc(len(items) - len(kept))
        for queued_at, command in kept:
            self.put(command, queued_at)
