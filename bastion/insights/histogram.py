"""Fixed-bound histograms of latency and time to first token.

The bounds are the same in every roll-up row, so histograms add up across buckets and grains, and
a percentile read from them is computed in Python from integers: identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

#: Upper bounds (milliseconds, inclusive) of every bucket but the last, which holds the rest.
BOUNDS_MS: Final[tuple[float, ...]] = (
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0, 5000.0, 10000.0, 20000.0, 30000.0, 60000.0,
    120000.0,
)  # fmt: skip
BUCKETS: Final = len(BOUNDS_MS) + 1


def bucket_of(value_ms: float) -> int:
    """The index of the bucket a value falls in: the first whose bound is >= the value."""
    return bisect_left(BOUNDS_MS, max(0.0, value_ms))


def percentile(counts: Sequence[int], q: float, max_ms: float | None = None) -> float | None:
    """The ``q`` quantile (0 < q <= 1) of a histogram, None when it is empty.

    Nearest rank (``ceil(q * n)``), interpolated linearly inside the bucket that holds it between
    the bucket's lower and upper bound; in the overflow bucket, towards ``max_ms`` (the largest value
    seen) when known, else the last bound. Rounded to 0.001 ms."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil without float surprises
    rank = min(rank, total)
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            lower = BOUNDS_MS[index - 1] if index > 0 else 0.0
            # The overflow bucket ends at the largest value seen; no bucket ends past it.
            upper = BOUNDS_MS[index] if index < len(BOUNDS_MS) else (max_ms if max_ms is not None else lower)
            if max_ms is not None:
                upper = min(upper, max_ms)
            upper = max(upper, lower)
            value = lower + (upper - lower) * (rank - seen) / count
            return round(value, 3)
        seen += count
    return None  # pragma: no cover - unreachable: rank <= total
