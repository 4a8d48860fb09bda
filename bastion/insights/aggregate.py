"""Ledger rows to roll-up rows, and finer roll-up rows to coarser ones: plain Python over values,
in a fixed order, so the same rows give the same numbers on every database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bastion.insights import classify
from bastion.insights.histogram import bucket_of
from bastion.insights.tables import DIMENSIONS, GUARD_DIMENSIONS, GUARD_SUMS, MAX_COLUMNS, SUM_COLUMNS

FIVE_MINUTES: Final = timedelta(minutes=5)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
WIDTH: Final = {"5m": FIVE_MINUTES, "1h": HOUR, "1d": DAY}

#: Ledger columns a roll-up reads.
LEDGER_COLUMNS: Final = (
    "created_at",
    "tenant_id",
    "key_id",
    "model",
    "prompt_id",
    "prompt_version",
    "status",
    "error_code",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "retries",
    "flagged",
    "guard",
    "extra",
    "experiment_id",
    "experiment_variant",
)

_INDEX = {name: i for i, name in enumerate(SUM_COLUMNS)}
_LAT0 = _INDEX["lat_00"]
_TTFT0 = _INDEX["ttft_00"]
_N = len(SUM_COLUMNS) + len(MAX_COLUMNS)

Key = tuple[Any, ...]


def floor(moment: datetime, grain: str) -> datetime:
    """The start of the bucket of ``grain`` holding ``moment`` (UTC)."""
    moment = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if grain == "1d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "1h":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


def _text(value: Any, width: int) -> str:
    return "" if value is None else str(value)[:width]


def _int(value: Any) -> int:
    return int(value or 0)


def _micros(ms: Any) -> int:
    return max(0, round(float(ms or 0.0) * 1000.0))


class Aggregator:
    """Accumulates ledger rows into 5-minute roll-up rows and guard rows."""

    def __init__(self) -> None:
        self.rollups: dict[Key, list[int]] = {}
        self.guard: dict[Key, list[int]] = {}

    def add(self, row: Mapping[Any, Any]) -> None:
        extra = row.get("extra")
        if classify.red_team(extra):
            return
        bucket = floor(row["created_at"], "5m")
        guard = row.get("guard")
        status = _int(row.get("status"))
        outcome = classify.outcome(status, row.get("error_code"), row.get("finish_reason"), guard)
        base = (
            bucket,
            _text(row.get("tenant_id"), 32),
            _text(row.get("model"), 256),
            _text(row.get("prompt_id"), 128),
            _int(row.get("prompt_version")),
            _text(row.get("key_id"), 32),
        )
        key = (*base, outcome, classify.arm(row.get("experiment_id"), row.get("experiment_variant")))
        sums = self.rollups.get(key)
        if sums is None:
            sums = self.rollups[key] = [0] * _N
        prompt_tokens = _int(row.get("prompt_tokens"))
        retries = _int(row.get("retries"))
        latency = _micros(row.get("latency_ms"))
        sums[0] += 1
        sums[1] += prompt_tokens
        sums[2] += _int(row.get("completion_tokens"))
        sums[3] += _int(row.get("cached_tokens"))
        sums[4] += retries * prompt_tokens
        sums[5] += round(float(row.get("cost_usd") or 0.0) * 1e9)
        sums[6] += latency
        sums[_LAT0 + bucket_of(latency / 1000.0)] += 1
        ttft_ms = row.get("ttft_ms")
        if ttft_ms is not None:
            ttft = _micros(ttft_ms)
            sums[7] += 1
            sums[8] += ttft
            sums[_TTFT0 + bucket_of(ttft / 1000.0)] += 1
            sums[-1] = max(sums[-1], ttft)
        sums[9] += 1 if classify.cache_hit(extra) else 0
        sums[10] += 1 if row.get("flagged") else 0
        sums[11] += retries
        sums[-2] = max(sums[-2], latency)
        for side, category, findings, blocked in classify.guard_findings(guard):
            guard_key = (*base, side, category)
            counts = self.guard.get(guard_key)
            if counts is None:
                counts = self.guard[guard_key] = [0, 0, 0]
            counts[0] += 1
            counts[1] += findings
            counts[2] += 1 if blocked else 0

    def rollup_rows(self, grain: str = "5m") -> list[dict[str, Any]]:
        return _rows(self.rollups, grain, DIMENSIONS, (*SUM_COLUMNS, *MAX_COLUMNS))

    def guard_rows(self, grain: str = "5m") -> list[dict[str, Any]]:
        return _rows(self.guard, grain, GUARD_DIMENSIONS, GUARD_SUMS)


def _rows(data: dict[Key, list[int]], grain: str, dims: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(data):
        row: dict[str, Any] = {"grain": grain, "bucket": key[0]}
        row.update(zip(dims, key[1:], strict=True))
        row.update(zip(values, data[key], strict=True))
        out.append(row)
    return out


def merge(
    rows: Iterable[Mapping[str, Any]], grain: str, dims: Sequence[str], sums: Sequence[str], maxima: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Roll-up rows of a finer grain merged into ``grain``: sums added, maxima the largest."""
    merged: dict[Key, list[int]] = {}
    width = len(sums)
    for row in rows:
        key = (floor(row["bucket"], grain), *(row[d] for d in dims))
        acc = merged.get(key)
        if acc is None:
            acc = merged[key] = [0] * (width + len(maxima))
        for i, name in enumerate(sums):
            acc[i] += int(row[name])
        for j, name in enumerate(maxima):
            acc[width + j] = max(acc[width + j], int(row[name]))
    return _rows(merged, grain, dims, (*sums, *maxima))
