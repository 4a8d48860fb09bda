"""What a backend is asked (an ``Admission``) and what it answers (a ``Decision``).

Both backends implement the same contract:

* ``admit`` checks every rate rule and budget and, only if all pass, records the request in every
  request log, its estimated tokens in every token log and its estimated cost as a reservation
  against every budget: all or nothing, atomically with respect to other admissions.
* A budget whose window counter does not exist yet makes ``admit`` answer ``NEEDS_SEED`` without
  recording anything; the caller seeds it from the ledger and asks again.
* ``settle`` (after the answer) replaces the token estimate with the real count and the
  reservation with the real cost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bastion.limits.policy import BudgetRule, RateRule

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The sliding window of every rate limit (requests and tokens per minute).
WINDOW_S = 60.0


class Outcome(enum.IntEnum):
    ADMITTED = 0
    REQUESTS = 1  # a requests-per-minute limit is reached
    TOKENS = 2  # a tokens-per-minute limit would be passed
    TOKENS_TOO_LARGE = 3  # the request alone needs more than a tokens-per-minute limit
    BUDGET = 4  # spent + reserved + estimate would pass a budget
    NEEDS_SEED = 5  # some budget counters must be seeded from the ledger first


@dataclass(slots=True)
class BudgetCharge:
    rule: BudgetRule
    #: The window counter's storage key (rule.base_key + window id).
    key: str
    #: Estimated cost of the request, micro-dollars.
    estimate: int
    window_start: datetime
    expire_at: int


@dataclass(slots=True)
class Admission:
    request_id: str
    request_rules: tuple[RateRule, ...]
    token_rules: tuple[RateRule, ...]
    #: Estimated prompt tokens (counted against token limits until settled with the real total).
    tokens: int
    charges: list[BudgetCharge]


@dataclass(slots=True)
class RateReport:
    """The most constraining scope of one dimension, for the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    #: Index of the failing rule (in request_rules / token_rules) or charge.
    index: int = 0
    retry_after_s: float = 0.0
    requests: RateReport | None = None
    tokens: RateReport | None = None
    #: For BUDGET: the window's spend and reservations, micro-dollars.
    spent: int = 0
    reserved: int = 0
    #: For NEEDS_SEED: indexes of the charges whose counters are missing.
    missing: list[int] = field(default_factory=list)
    #: The store that decided (where seeding and settlement must go).
    store: Store | None = None


class Store(Protocol):
    """A place limits and budgets live: one process's memory, or Redis."""

    async def admit(self, admission: Admission) -> Decision: ...

    async def seed(self, values: Sequence[tuple[BudgetCharge, int]]) -> None: ...

    def settle(self, admission: Admission, actual_tokens: int, actual_micros: int) -> None: ...


@dataclass(slots=True)
class Ticket:
    """An admitted request: what to settle, where, and the headers its response carries."""

    admission: Admission
    store: Store
    headers: dict[str, str]


def most_constraining(current: RateReport | None, candidate: RateReport) -> RateReport:
    """The report with the fewest remaining (on a tie, the one that takes longer to reset)."""
    if current is None:
        return candidate
    if candidate.remaining < current.remaining or (
        candidate.remaining == current.remaining and candidate.reset_s > current.reset_s
    ):
        return candidate
    return current
