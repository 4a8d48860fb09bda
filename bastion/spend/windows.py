"""Budget windows: the current UTC day and month, recomputed only when one of them ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["daily", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "monthly")

#: Counters outlive their window by this much, so a request admitted just before midnight can still
#: settle into the window it reserved in.
WINDOW_GRACE_S = 86_400


@dataclass(frozen=True, slots=True)
class Window:
    period: Period
    #: "20250131" for a day, "202501" for a month: part of the counter's storage key.
    id: str
    start: datetime
    end: datetime
    #: Unix time (s) at which the window's counters may be deleted.
    expire_at: int


def _month_after(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def window_at(period: Period, when: datetime) -> Window:
    when = when.astimezone(UTC)
    if period == "daily":
        start = when.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
        wid = start.strftime("%Y%m%d")
    else:
        start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = _month_after(start)
        wid = start.strftime("%Y%m")
    return Window(period, wid, start, end, int(end.timestamp()) + WINDOW_GRACE_S)


class Windows:
    """The current day and month windows; ``current`` costs a clock read and a comparison."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until = float("-inf")
        self._current: dict[Period, Window] = {}

    def current(self) -> dict[Period, Window]:
        now = self._clock()
        if now >= self._until:
            when = datetime.fromtimestamp(now, UTC)
            self._current = {period: window_at(period, when) for period in PERIODS}
            self._until = min(w.end.timestamp() for w in self._current.values())
        return self._current
