"""A circuit breaker per arm: ``failure_threshold`` consecutive failures open it for ``cooldown_s``
(on the orchestrator's clock); then one trial is let through (half-open): a success closes it, a
failure opens it again. The routing breaker is per deployment and feeds the deployment gauge, so
arms have this small one of their own."""

from __future__ import annotations

import enum
from collections.abc import Callable


class ArmBreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class ArmBreaker:
    def __init__(self, failure_threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._open = False

    @property
    def state(self) -> ArmBreakerState:
        if not self._open:
            return ArmBreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return ArmBreakerState.HALF_OPEN
        return ArmBreakerState.OPEN

    def allows(self) -> bool:
        return self.state is not ArmBreakerState.OPEN

    def record_success(self) -> None:
        self._failures = 0
        self._open = False

    def record_failure(self) -> None:
        if self._open or self._failures + 1 >= self.failure_threshold:
            self._open = True
            self._opened_at = self._clock()
            self._failures = 0
            return
        self._failures += 1
