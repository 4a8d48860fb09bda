"""The in-process store: sliding-window logs and budget counters in this process's memory.

Exact within one process because ``admit`` never awaits: the event loop runs one admission from
check to record without interleaving another (asyncio is single-threaded). Several processes each
keep their own state; use the Redis store when they share the work.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from bastion.limits.plan import (
    WINDOW_S,
    Admission,
    BudgetCharge,
    Decision,
    Outcome,
    RateReport,
    most_constraining,
)

#: Admissions between two sweeps of idle logs.
_PRUNE_EVERY = 4096


class _TokenLog:
    """Entries in admission order with a running sum; a correction changes an entry's tokens.

    Entries are ``(at, request_id)`` tuples and tokens live in a ``request_id -> int`` dict: both
    hold only atomic values, which the garbage collector stops tracking. A busy window holds
    ``rate x 60`` entries; as objects of their own they made every full collection scan them all
    (a latency spike each time).
    """

    __slots__ = ("entries", "tokens", "used")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, str]] = deque()
        self.tokens: dict[str, int] = {}
        self.used = 0

    def add(self, at: float, tokens: int, request_id: str) -> None:
        self.entries.append((at, request_id))
        self.tokens[request_id] = tokens
        self.used += tokens

    def correct(self, request_id: str, delta: int) -> None:
        if request_id in self.tokens:
            self.tokens[request_id] += delta
            self.used += delta

    def expire(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            _, request_id = entries.popleft()
            self.used -= self.tokens.pop(request_id, 0)


class _Budget:
    __slots__ = ("expire_at", "holds", "reserved", "spent")

    def __init__(self, spent: int, expire_at: int) -> None:
        self.spent = spent
        self.expire_at = expire_at
        self.reserved = 0
        #: request id -> reserved micro-dollars, until the request settles.
        self.holds: dict[str, int] = {}


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self.window_s = window_s
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, _TokenLog] = {}
        self._budgets: dict[str, _Budget] = {}
        #: Expiry times of the windows seen, to notice when a new window begins.
        self._expiries: set[int] = set()
        self._until_prune = _PRUNE_EVERY

    # -- admission (no await inside: atomic on the event loop) --------------------------------

    async def admit(self, admission: Admission) -> Decision:
        return self.admit_now(admission)

    def admit_now(self, admission: Admission) -> Decision:
        now = self._clock()
        self._until_prune -= 1
        if self._until_prune <= 0:
            self._prune(now)
        window = self.window_s
        cutoff = now - window
        requests: RateReport | None = None
        tokens: RateReport | None = None
        for index, rule in enumerate(admission.request_rules):
            log = self._requests.get(rule.requests_key)
            if log is None:
                log = self._requests[rule.requests_key] = deque()
            while log and log[0] <= cutoff:
                log.popleft()
            limit = rule.rpm or 0
            if len(log) >= limit:
                retry = log[0] + window - now if log else window
                report = RateReport(limit, 0, retry)
                return Decision(Outcome.REQUESTS, index, retry, requests=report, store=self)
            oldest = log[0] if log else now
            requests = most_constraining(requests, RateReport(limit, limit - len(log) - 1, oldest + window - now))
        wanted = admission.tokens
        for index, rule in enumerate(admission.token_rules):
            token_log = self._tokens.get(rule.tokens_key)
            if token_log is None:
                token_log = self._tokens[rule.tokens_key] = _TokenLog()
            token_log.expire(cutoff)
            limit = rule.tpm or 0
            if token_log.used + wanted > limit:
                if wanted > limit:
                    report = RateReport(limit, max(0, limit - token_log.used), window)
                    return Decision(Outcome.TOKENS_TOO_LARGE, index, window, tokens=report, store=self)
                retry = self._tokens_retry(token_log, wanted, limit, now)
                report = RateReport(limit, max(0, limit - token_log.used), retry)
                return Decision(Outcome.TOKENS, index, retry, tokens=report, store=self)
            oldest = token_log.entries[0][0] if token_log.entries else now
            tokens = most_constraining(
                tokens, RateReport(limit, limit - token_log.used - wanted, oldest + window - now)
            )
        missing: list[int] = []
        for index, charge in enumerate(admission.charges):
            budget = self._budgets.get(charge.key)
            if budget is None:
                missing.append(index)
            elif budget.spent + budget.reserved + charge.estimate > charge.rule.limit_micros:
                return Decision(Outcome.BUDGET, index, spent=budget.spent, reserved=budget.reserved, store=self)
        if missing:
            return Decision(Outcome.NEEDS_SEED, missing=missing, store=self)
        # Every rule passed: record in all of them.
        request_id = admission.request_id
        for rule in admission.request_rules:
            self._requests[rule.requests_key].append(now)
        for rule in admission.token_rules:
            token_log = self._tokens[rule.tokens_key]
            token_log.add(now, wanted, request_id)
        for charge in admission.charges:
            if charge.estimate:
                budget = self._budgets[charge.key]
                budget.reserved += charge.estimate
                budget.holds[request_id] = charge.estimate
        return Decision(Outcome.ADMITTED, requests=requests, tokens=tokens, store=self)

    def _prune(self, now: float) -> None:
        """Forget the logs of scopes idle for a whole window, so memory follows the active callers."""
        self._until_prune = _PRUNE_EVERY
        cutoff = now - self.window_s
        for key in [key for key, log in self._requests.items() if not log or log[-1] <= cutoff]:
            del self._requests[key]
        for key, token_log in list(self._tokens.items()):
            token_log.expire(cutoff)
            if not token_log.entries:
                del self._tokens[key]

    @staticmethod
    def _tokens_retry(log: _TokenLog, wanted: int, limit: int, now: float) -> float:
        """Seconds until enough of the oldest entries leave the window for ``wanted`` to fit."""
        left = log.used
        for at, request_id in log.entries:
            left -= log.tokens.get(request_id, 0)
            if left + wanted <= limit:
                return at + WINDOW_S - now
        return WINDOW_S

    # -- seeding and settlement -----------------------------------------------------------------

    async def seed(self, values: Sequence[tuple[BudgetCharge, int]]) -> None:
        for charge, spent in values:
            if charge.key not in self._budgets:
                if charge.expire_at not in self._expiries:
                    self._expiries.add(charge.expire_at)
                    self._forget_expired()
                self._budgets[charge.key] = _Budget(spent, charge.expire_at)

    def _forget_expired(self) -> None:
        """Drop counters of windows long over (a new window has just begun): memory stays bounded."""
        now = time.time()
        expired = [key for key, b in self._budgets.items() if b.expire_at <= now and not b.holds]
        for key in expired:
            del self._budgets[key]
        self._expiries = {at for at in self._expiries if at > now}

    def settle(self, admission: Admission, actual_tokens: int, actual_micros: int) -> None:
        request_id = admission.request_id
        delta = actual_tokens - admission.tokens
        if delta:
            for rule in admission.token_rules:
                token_log = self._tokens.get(rule.tokens_key)
                if token_log is not None:
                    token_log.correct(request_id, delta)
        for charge in admission.charges:
            budget = self._budgets.get(charge.key)
            if budget is None:
                continue
            held = budget.holds.pop(request_id, None)
            if held is not None:
                budget.reserved -= held
            budget.spent += actual_micros

    # -- introspection (tests, admin) -------------------------------------------------------------

    def spent(self, key: str) -> tuple[int, int] | None:
        """(spent, reserved) micro-dollars of a budget window counter, or None if not seeded."""
        budget = self._budgets.get(key)
        return None if budget is None else (budget.spent, budget.reserved)
