"""The per-request scan budget: how long the guard may spend on one request, and what happens past it.

Every detector runs in time linear in its input, but a request may carry megabytes: a policy's
``scan_budget_ms`` bounds the wall time of one request's scan, and ``scan_budget_action`` says what
happens when it runs out. ``block`` (the default) refuses the request, or stops a streamed answer:
text the guard could not finish checking is not let through. ``flag`` lets it through as far as it
was checked (redactions found so far are applied; the rest goes unchanged) and records it.

Either way the result carries a ``scan_budget`` verdict with a ``SCAN_BUDGET_EXCEEDED`` finding, which
the ledger shows like any other scanner's.

The deadline travels in a context variable, so the detectors check it between segments of a long
text without every call taking a parameter; ``asyncio.to_thread`` and ``offload`` carry it into the
worker thread that runs a large scan.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

from bastion.guard.models import Action, Finding, Verdict

BUDGET_SCANNER = "scan_budget"
BUDGET_FINDING = "SCAN_BUDGET_EXCEEDED"

_deadline: ContextVar[float | None] = ContextVar("bastion_guard_scan_deadline", default=None)


class ScanBudgetExceeded(Exception):
    """The scan ran past the request's deadline; the caller turns it into a ``scan_budget`` verdict."""


def check() -> None:
    """Raise ``ScanBudgetExceeded`` if the current scan's deadline has passed (no deadline: no-op)."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise ScanBudgetExceeded


def active() -> bool:
    return _deadline.get() is not None


class ScanDeadline:
    """``with ScanDeadline(budget_ms):`` runs the block under a deadline ``budget_ms`` after
    ``started`` (default: now). An enclosing deadline wins: the budget is per request, not per call.

    A class, not a generator-based context manager: every scan enters one or two of these, and the
    generator machinery cost more than the small scans it wrapped.
    """

    __slots__ = ("_budget_ms", "_started", "_token")

    def __init__(self, budget_ms: float, *, started: float | None = None) -> None:
        self._budget_ms = budget_ms
        self._started = started
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        if _deadline.get() is None:
            started = time.monotonic() if self._started is None else self._started
            self._token = _deadline.set(started + self._budget_ms / 1000)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _deadline.reset(self._token)
            self._token = None


class NotCounted:
    """``with NotCounted():`` the time spent in the block is added to the current deadline: for a
    one-off cost of the process (loading a model on first use) that no request should pay for."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        deadline = _deadline.get()
        if deadline is not None:
            _deadline.set(deadline + time.monotonic() - self._started)


def budget_verdict(action: Action, at: int = 0, **where: int | None) -> Verdict:
    """The verdict of a scan that ran out of budget (``at``: where in the text it stopped)."""
    return Verdict(BUDGET_SCANNER, 1.0, True, [Finding(BUDGET_FINDING, at, at, 1.0, **where)], action)
