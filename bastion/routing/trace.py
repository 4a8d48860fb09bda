"""What routing did for one request: the attempts made and where the answer came from.

Data only: the request context, the ledger and the metrics read it without importing the router.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Attempt:
    deployment: str
    outcome: str  # "ok" | "error" | "cancelled"
    duration_s: float
    status: int | None = None
    error: str | None = None


@dataclass(slots=True)
class RouteTrace:
    """What routing did for one request: for the ledger, metrics and the overhead figure."""

    attempts: list[Attempt] = field(default_factory=list)
    #: Seconds spent waiting on upstreams (including back-off sleeps); not Bastion's overhead.
    upstream_s: float = 0.0
    alias: str | None = None
    deployment: str | None = None
    upstream_model: str | None = None

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)
