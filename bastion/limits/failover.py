"""What happens when Redis is unreachable: the configured choice, never a crash.

``open``: admissions fall back to a per-process memory store (limits and budgets then hold per
process, not across them) until Redis answers again. ``closed``: requests are refused with 503.
Either way the outage is logged once when it starts and once when it ends, and every failed call
and every admission decided without Redis is counted. After a failure Redis is not asked again for
``limits.redis_retry_s`` (so an outage does not add a connect timeout to every request); the
next admission after that probes it (the channel reconnects by itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import structlog
from redis.exceptions import RedisError

from bastion.errors import BastionError
from bastion.limits.memory import MemoryStore
from bastion.limits.metrics import FALLBACK_ADMISSIONS, REDIS_FAILURES
from bastion.limits.plan import Admission, Decision
from bastion.limits.redis_store import RedisStore

log = structlog.get_logger("bastion.limits")

#: What counts as "Redis is unreachable or broken" (a script error too: fail as configured).
REDIS_ERRORS = (RedisError, OSError, TimeoutError, ConnectionError)


class LimiterUnavailable(BastionError):
    status = 503
    error_type = "overloaded_error"
    code = "limiter_unavailable"


class FailoverStore:
    def __init__(
        self,
        primary: RedisStore,
        mode: Literal["open", "closed"],
        *,
        retry_s: float = 1.0,
        fallback: MemoryStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.mode = mode
        self.retry_s = retry_s
        self.fallback = fallback or MemoryStore()
        self._clock = clock
        self._down_until = 0.0
        self._outage_started: float | None = None
        self._fallback_counter = FALLBACK_ADMISSIONS.labels(mode=mode)

    @property
    def in_outage(self) -> bool:
        return self._outage_started is not None

    async def start(self) -> None:
        await self.primary.start()

    async def stop(self) -> None:
        await self.primary.stop()

    async def admit(self, admission: Admission) -> Decision:
        """Redis's decision, or (while it is unreachable) the fallback's or a 503. Seeding and
        settlement go to ``decision.store``, the store that decided."""
        if self._outage_started is None or self._clock() >= self._down_until:
            try:
                decision = await self.primary.admit(admission)
            except REDIS_ERRORS as exc:
                self.note_failure(exc)
            else:
                if self._outage_started is not None:
                    log.warning("limits_redis_recovered", outage_s=round(self._clock() - self._outage_started, 3))
                    self._outage_started = None
                return decision
        self._fallback_counter.inc()
        if self.mode == "closed":
            raise LimiterUnavailable(
                "Rate limits and budgets cannot be checked right now (the shared limiter store is unreachable); "
                "retry shortly.",
                headers={"retry-after": str(max(1, round(self.retry_s + 0.499)))},
            )
        return self.fallback.admit_now(admission)

    def note_failure(self, exc: BaseException) -> None:
        REDIS_FAILURES.inc()
        self._down_until = self._clock() + self.retry_s
        if self._outage_started is None:
            self._outage_started = self._clock()
            # Once per outage; the metric counts every failure.
            log.warning(
                "limits_redis_unreachable",
                behaviour="fail open: per-process limits" if self.mode == "open" else "fail closed: 503",
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
