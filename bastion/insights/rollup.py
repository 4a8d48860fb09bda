"""The roll-up: recomputes 5-minute buckets from ledger rows, hours from 5-minute rows and days
from hours, incrementally from a watermark or from scratch.

Incremental runs follow ``interactions.written_at`` (when a row reached the database), not
``created_at`` (when the request arrived: rows are written after the answer, in batches, and a
journal replayed after a crash writes rows hours old). Each run reads the rows written since the
watermark minus ``commit_slack_s`` (a writer's transaction that took its timestamp before the
watermark but committed after it is read by the next run), collects the 5-minute buckets their
``created_at`` fall in, and recomputes those buckets whole from the ledger. Recomputing a bucket
deletes and re-inserts its rows in one transaction, so a run is idempotent and re-reading rows is
harmless; the hour and the day holding a recomputed bucket are rebuilt from the finer grain in
the same transaction. The watermark then moves to the database's clock as read before the rows,
so an idle ledger is not read again once the slack has passed.

A late row whose hour is already past the 5-minute retention (its hour could no longer be rebuilt
whole) is not rolled up; it is counted in the run's ``late_skipped``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy import Integer, String, Table, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.config.insights_settings import InsightsSettings
from bastion.insights import tables
from bastion.insights.aggregate import FIVE_MINUTES, HOUR, LEDGER_COLUMNS, WIDTH, Aggregator, floor, merge
from bastion.store.db import Database
from bastion.store.models import Interaction, UTCDateTime

log = structlog.get_logger("bastion.insights")

_LEDGER: Table = Interaction.__table__  # type: ignore[assignment]  # declarative tables are Table objects
STATE_NAME = "rollup"
_INSERT_CHUNK = 500
#: Ledger rows converted between two yields to the event loop (a few milliseconds of work).
_SLICE = 500
_MERGES = (
    (tables.rollups, tables.DIMENSIONS, tables.SUM_COLUMNS, tables.MAX_COLUMNS),
    (tables.guard, tables.GUARD_DIMENSIONS, tables.GUARD_SUMS, ()),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RollupResult:
    rows_read: int = 0
    buckets: int = 0
    late_skipped: int = 0
    watermark: datetime | None = None
    seconds: float = 0.0
    pruned: dict[str, int] = field(default_factory=dict)
    #: The 5-minute buckets recomputed (for the drift sampler).
    touched: list[datetime] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "buckets": self.buckets,
            "late_skipped": self.late_skipped,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "seconds": round(self.seconds, 3),
            "pruned": self.pruned,
        }


def _ranges(buckets: Sequence[datetime], width: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted bucket starts as [start, end) ranges of adjacent buckets."""
    ranges: list[tuple[datetime, datetime]] = []
    for bucket in buckets:
        if ranges and ranges[-1][1] == bucket:
            ranges[-1] = (ranges[-1][0], bucket + width)
        else:
            ranges.append((bucket, bucket + width))
    return ranges


def _in_ranges(column: Any, ranges: Iterable[tuple[datetime, datetime]]) -> Any:
    return or_(*(and_(column >= start, column < end) for start, end in ranges))


class Rollup:
    """Keeps the roll-up tables. ``run`` is the job's increment, ``rebuild`` starts over."""

    def __init__(self, db: Database, settings: InsightsSettings, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        #: The lease this object holds (``claim``), renewed between transactions of a long run.
        self._lease: tuple[str, float] | None = None

    # -- state and lease -----------------------------------------------------------------------

    async def watermark(self) -> datetime | None:
        async with self.db.engine.connect() as connection:
            row = (
                await connection.execute(select(tables.state.c.watermark).where(tables.state.c.name == STATE_NAME))
            ).first()
        return row[0] if row is not None else None

    async def due(self, prune_every: timedelta = HOUR) -> bool:
        """Whether a run has anything to do: ledger rows written since the watermark (minus the
        slack), or no run for ``prune_every`` while there is anything at all (retention)."""
        state = tables.state
        async with self.db.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(state.c.watermark, state.c.updated_at).where(state.c.name == STATE_NAME)
                )
            ).first()
            watermark, updated = (row[0], row[1]) if row is not None else (None, None)
            query = select(_LEDGER.c.id).limit(1)
            if watermark is not None:
                query = query.where(_LEDGER.c.written_at > watermark - timedelta(seconds=self.settings.commit_slack_s))
            if (await connection.execute(query)).first() is not None:
                return True
        return watermark is not None and (updated is None or self.clock() - updated > prune_every)

    async def claim(self, owner: str, lease_s: float = 600.0) -> bool:
        """Take the roll-up's lease (one roll-up at a time across processes); False if another
        owner holds an unexpired one."""
        now = self.clock()
        table = tables.state
        async with self.db.engine.begin() as connection:
            exists = (await connection.execute(select(table.c.name).where(table.c.name == STATE_NAME))).first()
            if exists is None:
                await connection.execute(insert(table).values(name=STATE_NAME, updated_at=now))
            result = await connection.execute(
                update(table)
                .where(
                    table.c.name == STATE_NAME,
                    or_(table.c.lease_owner.is_(None), table.c.lease_owner == owner, table.c.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            )
            claimed = bool(result.rowcount)
        self._lease = (owner, lease_s) if claimed else None
        return claimed

    async def _renew(self) -> None:
        """Push the lease's end further while a long run (a first roll-up, a rebuild) goes on."""
        if self._lease is None:
            return
        owner, lease_s = self._lease
        table = tables.state
        async with self.db.engine.begin() as connection:
            await connection.execute(
                update(table)
                .where(table.c.name == STATE_NAME, table.c.lease_owner == owner)
                .values(lease_until=self.clock() + timedelta(seconds=lease_s))
            )

    async def release(self, owner: str) -> None:
        self._lease = None
        table = tables.state
        async with self.db.engine.begin() as connection:
            await connection.execute(
                update(table)
                .where(table.c.name == STATE_NAME, table.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def _save_watermark(
        self, connection: AsyncConnection, watermark: datetime | None, rows: int, seconds: float
    ) -> None:
        table = tables.state
        exists = (await connection.execute(select(table.c.name).where(table.c.name == STATE_NAME))).first()
        values = {"watermark": watermark, "updated_at": self.clock(), "latency_ms": round(seconds * 1000.0, 3)}
        if exists is None:
            await connection.execute(insert(table).values(name=STATE_NAME, rows_seen=rows, **values))
        else:
            await connection.execute(
                update(table).where(table.c.name == STATE_NAME).values(rows_seen=table.c.rows_seen + rows, **values)
            )

    # -- runs ----------------------------------------------------------------------------------

    async def run(self) -> RollupResult:
        """One increment: every bucket holding a row written since the watermark (minus the slack)."""
        started = time.perf_counter()
        result = RollupResult()
        watermark = await self.watermark()
        since = watermark - timedelta(seconds=self.settings.commit_slack_s) if watermark is not None else None
        query = select(_LEDGER.c.created_at)
        if since is not None:
            query = query.where(_LEDGER.c.written_at > since)
        touched: set[datetime] = set()
        async with self.db.engine.connect() as connection:
            # The database's own clock, read before the rows: every row committed after this read
            # has a ``written_at`` of at least this time minus its transaction's length.
            newest = (await connection.execute(select(func.current_timestamp(type_=UTCDateTime())))).scalar()
            rows = await connection.execute(query)
            # Converting and bucketing the rows is CPU work on the loop that serves requests: it
            # yields to them after every slice, so a busy bucket never stalls them.
            for part in rows.partitions(_SLICE):
                result.rows_read += _touched_buckets(part, touched)
                await asyncio.sleep(0)
        horizon = floor(self.clock() - timedelta(days=self.settings.retention.rollup_5m_days), "1h") + HOUR
        ledger_days = self.settings.retention.ledger_days
        if ledger_days is not None:
            horizon = max(horizon, floor(self.clock() - timedelta(days=ledger_days), "1h") + HOUR)
        buckets = sorted(b for b in touched if floor(b, "1h") >= horizon)
        result.late_skipped = len(touched) - len(buckets)
        if result.late_skipped:
            log.warning("insights_late_buckets_skipped", buckets=result.late_skipped)
        await self.recompute(buckets)
        result.buckets = len(buckets)
        result.touched = buckets
        result.seconds = time.perf_counter() - started
        result.watermark = newest
        async with self.db.engine.begin() as connection:
            await self._save_watermark(connection, newest, result.rows_read, result.seconds)
        return result

    async def rebuild(self) -> RollupResult:
        """Drop every roll-up and recompute them from the ledger rows there are. Roll-ups older
        than the oldest ledger row (its retention) cannot be recomputed and are lost."""
        started = time.perf_counter()
        result = RollupResult()
        async with self.db.engine.connect() as connection:
            newest = (await connection.execute(select(func.current_timestamp(type_=UTCDateTime())))).scalar()
        async with self.db.engine.begin() as connection:
            for table in (tables.rollups, tables.guard):
                await connection.execute(delete(table))
        touched: set[datetime] = set()
        async with self.db.engine.connect() as connection:
            for (created_at,) in await connection.execute(select(_LEDGER.c.created_at)):
                touched.add(floor(created_at, "5m"))
                result.rows_read += 1
        buckets = sorted(touched)
        await self.recompute(buckets)
        result.buckets = len(buckets)
        result.seconds = time.perf_counter() - started
        result.watermark = newest
        async with self.db.engine.begin() as connection:
            await self._save_watermark(connection, newest, result.rows_read, result.seconds)
        return result

    async def recompute(self, buckets: Sequence[datetime]) -> None:
        """Recompute the given 5-minute buckets (sorted) from the ledger, then their hours from
        the 5-minute rows and their days from the hours (each grain in transactions of at most
        ``buckets_per_transaction`` buckets). The watermark moves only after all of it, so a run
        cut short is simply done again."""
        step = self.settings.buckets_per_transaction
        for start in range(0, len(buckets), step):
            await self._recompute_5m(buckets[start : start + step])
            await self._renew()
        for grain, finer in (("1h", "5m"), ("1d", "1h")):
            starts = sorted({floor(b, grain) for b in buckets})
            for start in range(0, len(starts), step):
                await self._recompute_merged(grain, finer, starts[start : start + step])
                await self._renew()

    async def _recompute_5m(self, buckets: Sequence[datetime]) -> None:
        ranges = _ranges(buckets, FIVE_MINUTES)
        aggregator = Aggregator()
        columns = [_LEDGER.c[name] for name in LEDGER_COLUMNS]
        async with self.db.engine.connect() as connection:
            result = await connection.execute(select(*columns).where(_in_ranges(_LEDGER.c.created_at, ranges)))
            # A bucket can hold many thousands of rows: they are converted and counted a slice at
            # a time, yielding to the requests this event loop serves in between. (Not in a thread:
            # its own malloc arena would keep the freed row memory after every run.)
            for part in result.mappings().partitions(_SLICE):
                for row in part:
                    aggregator.add(row)
                await asyncio.sleep(0)
            writes = _aggregated_writes(aggregator)
        async with self.db.engine.begin() as connection:
            for table, grain, rows in writes:
                await connection.execute(
                    delete(table).where(table.c.grain == grain, _in_ranges(table.c.bucket, ranges))
                )
                for start in range(0, len(rows), _INSERT_CHUNK):
                    await connection.execute(insert(table), rows[start : start + _INSERT_CHUNK])

    async def _recompute_merged(self, grain: str, finer: str, starts: Sequence[datetime]) -> None:
        """Buckets of ``grain`` rebuilt in SQL from the rows of the ``finer`` grain, then the
        grain's tenant totals from them (one transaction)."""
        async with self.db.engine.begin() as connection:
            await _merge(connection, grain, starts, source=finer)
            for level in tables.LEVELS:
                await _merge(connection, grain, starts, level=level)

    # -- retention -----------------------------------------------------------------------------

    async def prune(self) -> dict[str, int]:
        """Delete ledger rows and roll-ups past their retention; counts by kind."""
        now = self.clock()
        retention = self.settings.retention
        removed: dict[str, int] = {}
        async with self.db.engine.begin() as connection:
            kept = {"5m": retention.rollup_5m_days, "1h": retention.rollup_1h_days, "1d": retention.rollup_1d_days}
            for grain, days in kept.items():
                cutoff = now - timedelta(days=days)
                removed[grain] = await self._prune_grain(connection, grain, cutoff)
                for level in tables.LEVELS:
                    removed[grain] += await self._prune_grain(connection, f"{level}{grain}", cutoff)
            drift = tables.drift
            cutoff = now - timedelta(days=retention.rollup_1h_days)
            removed["drift"] = (await connection.execute(delete(drift).where(drift.c.bucket < cutoff))).rowcount or 0
            if retention.ledger_days is not None:
                cutoff = now - timedelta(days=retention.ledger_days)
                deleted = await connection.execute(delete(_LEDGER).where(_LEDGER.c.created_at < cutoff))
                removed["ledger"] = deleted.rowcount or 0
        return {kind: count for kind, count in removed.items() if count}

    async def _prune_grain(self, connection: AsyncConnection, grain: str, cutoff: datetime) -> int:
        total = 0
        for table in (tables.rollups, tables.guard):
            deleted = await connection.execute(delete(table).where(table.c.grain == grain, table.c.bucket < cutoff))
            total += deleted.rowcount or 0
        return total


def _touched_buckets(rows: Iterable[Any], touched: set[datetime]) -> int:
    count = 0
    for (created_at,) in rows:
        touched.add(floor(created_at, "5m"))
        count += 1
    return count


def _aggregated_writes(aggregator: Aggregator) -> list[tuple[Table, str, list[dict[str, Any]]]]:
    """The aggregator's 5-minute rows and their summary levels, by table and grain."""
    rollup_rows, guard_rows = aggregator.rollup_rows(), aggregator.guard_rows()
    writes = [(tables.rollups, "5m", rollup_rows), (tables.guard, "5m", guard_rows)]
    for level, (kept, guard_kept) in tables.LEVELS.items():
        grain = f"{level}5m"
        writes.append((tables.rollups, grain, _totals(rollup_rows, grain, tables.DIMENSIONS, kept, _ROLLUP_VALUES)))
        writes.append(
            (tables.guard, grain, _totals(guard_rows, grain, tables.GUARD_DIMENSIONS, guard_kept, _GUARD_VALUES))
        )
    return writes


async def _merge(
    connection: AsyncConnection,
    grain: str,
    starts: Sequence[datetime],
    *,
    source: str | None = None,
    level: str | None = None,
) -> None:
    """Replace the rows of ``grain`` (of its summary ``level``, see ``tables.LEVELS``) in the
    buckets starting at ``starts`` by integer sums and maxima, in SQL, of the rows of ``source``
    (default: ``grain``) in each bucket. A level keeps only its key columns, the others being
    ``''`` / 0."""
    width = WIDTH[grain]
    target = f"{level}{grain}" if level else grain
    source = source or grain
    for table, dims, sums, maxima in _MERGES:
        kept = set(tables.LEVELS[level][0 if table is tables.rollups else 1]) if level else set(dims)
        await connection.execute(
            delete(table).where(table.c.grain == target, _in_ranges(table.c.bucket, _ranges(starts, width)))
        )
        keys = [table.c[d] for d in dims if d in kept]
        values = [table.c[d] if d in kept else _blank(d) for d in dims]
        for bucket in starts:
            query = (
                select(
                    literal(target, String()),
                    literal(bucket, UTCDateTime()),
                    *values,
                    *(func.sum(table.c[n]) for n in sums),
                    *(func.max(table.c[n]) for n in maxima),
                )
                .where(table.c.grain == source, table.c.bucket >= bucket, table.c.bucket < bucket + width)
                .group_by(*keys)
            )
            await connection.execute(insert(table).from_select(["grain", "bucket", *dims, *sums, *maxima], query))


_ROLLUP_VALUES: Final = (tables.SUM_COLUMNS, tables.MAX_COLUMNS)
_GUARD_VALUES: Final = (tables.GUARD_SUMS, ())


def _totals(
    rows: list[dict[str, Any]],
    grain: str,
    dims: Sequence[str],
    kept: Sequence[str],
    values: tuple[Sequence[str], Sequence[str]],
) -> list[dict[str, Any]]:
    """5-minute rows summed into a summary level (``grain``: ``t5m``, ``m5m``), in Python: the
    same sums ``_merge`` makes in SQL for the coarser grains."""
    out = merge(rows, "5m", kept, values[0], values[1])
    for row in out:
        row["grain"] = grain
        for dimension in dims:
            if dimension not in kept:
                row[dimension] = 0 if dimension == "prompt_version" else ""
    return out


def _blank(dimension: str) -> Any:
    """The value of a key column a total does not keep."""
    return literal(0, Integer()) if dimension == "prompt_version" else literal("", String())
