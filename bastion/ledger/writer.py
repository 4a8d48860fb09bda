"""The ledger writer: journal first, database in the background.

``submit`` (the request path) appends the record to this process's journal and puts it on a
bounded in-memory queue; it never waits and never fails the request. One background task moves
records into the database in batches with idempotent inserts and then advances the journal
checkpoint.

The journal, not the queue, is the source of truth. The writer keeps a cursor (segment, offset):
everything before it is in the database. Each batch is taken from the queue while the queue lines
up with the cursor, and read back from the journal file wherever it does not (records dropped
because the queue was full, or a batch whose insert failed). So overflow and database outages cost
throughput, never records.

At start, and every ``orphan_scan_interval_s``, segments left by dead processes are claimed (see
``journal.claim_orphans``), replayed from their checkpoints and deleted. On a graceful stop the
writer drains everything; whatever it cannot write in ``stop_timeout_s`` stays in the journal for
the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import structlog

from bastion.config.settings import LedgerSettings
from bastion.ledger.journal import Journal, Orphan, Segment, claim_orphans
from bastion.ledger.record import REDACTED, apply_content_mode, encode_record
from bastion.ledger.redact import ContentRedactor
from bastion.ledger.store import RowInserter, is_row_error
from bastion.observability.metrics import (
    LEDGER_JOURNAL_LAG,
    LEDGER_OVERFLOWS,
    LEDGER_QUEUE_DEPTH,
    LEDGER_WRITE_ERRORS,
    LEDGER_WRITTEN,
)
from bastion.store.db import Database

log = structlog.get_logger("bastion.ledger")

_RETRY_FIRST_S = 0.05
#: Longest stretch of record preparation before the writer lets request handlers run.
_SLICE_S = 0.002
#: Records from the journal whose database insert failed for data reasons go here, not lost.
REJECTED_FILE = "rejected.jsonl"

QueueItem = tuple[Segment, int, int, dict[str, Any]]


class LedgerWriter:
    def __init__(self, settings: LedgerSettings, db: Database, journal_dir: Path) -> None:
        self.settings = settings
        self.db = db
        self.journal = Journal(journal_dir, settings.segment_max_bytes, settings.fsync)
        self._queue: deque[QueueItem] = deque()
        self._queue_size = settings.queue_size
        self._queue_max_bytes = settings.queue_max_bytes
        #: Journal bytes of the queued records: bounds the queue's memory when prompts are large.
        self._queued_bytes = 0
        #: Records the journal could not take (disk full): written from memory, best effort.
        self._unjournaled: deque[dict[str, Any]] = deque(maxlen=settings.queue_size)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._cursor_segment: Segment | None = None
        self._cursor = 0
        self._redactor: ContentRedactor | None = None
        #: Where batches with named-entity redaction are prepared (a model: milliseconds per record).
        self._redaction_thread: ThreadPoolExecutor | None = None
        self._inserter = RowInserter(db)
        #: The last batch was full: more is waiting, so do not pause before the next.
        self._backlog = False
        #: Set once the segments of dead processes found at start are in the database.
        self.startup_replay_done = asyncio.Event()
        self._submitted = 0
        #: Records committed to the database (including replays and duplicates skipped by it).
        self.written = 0
        self.replayed = 0
        self.errors = 0
        self.overflows = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._redactor is None:
            # Building the guard's detectors costs about a second of CPU: not on the event loop.
            names = self.settings.redact_names
            self._redactor = await asyncio.get_running_loop().run_in_executor(
                None, lambda: ContentRedactor(names=names)
            )
        self.journal.open()
        self._cursor_segment = self.journal.current
        self._stopping = False
        LEDGER_QUEUE_DEPTH.set_function(lambda: len(self._queue))
        LEDGER_JOURNAL_LAG.set_function(self.journal.pending_bytes)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Drain what is queued and journaled into the database (bounded), then release the journal."""
        if self._task is None:
            return
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.settings.stop_timeout_s)
        except TimeoutError:
            log.warning("ledger_drain_timeout", pending_bytes=self.journal.pending_bytes())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:
            log.exception("ledger_writer_failed")
        self._task = None
        self.journal.close()
        if self._redaction_thread is not None:
            self._redaction_thread.shutdown(wait=False)
            self._redaction_thread = None

    # -- the request path ------------------------------------------------------------------------

    def submit(self, record: dict[str, Any]) -> None:
        """Journal the record, then queue it for the database. Never blocks, never raises."""
        try:
            line = encode_record(record)
        except Exception:  # an unencodable record is a bug; it must not cost the client its answer
            log.exception("ledger_record_unencodable", request_id=record.get("id"))
            self.errors += 1
            LEDGER_WRITE_ERRORS.labels(kind="encode").inc()
            return
        try:
            segment, start, end = self.journal.append(line)
        except OSError as exc:
            # Not durable now; keep it in memory so a healthy database still gets it.
            log.error("ledger_journal_write_failed", error=str(exc), request_id=record.get("id"))
            self.errors += 1
            LEDGER_WRITE_ERRORS.labels(kind="journal").inc()
            self._unjournaled.append(record)
        else:
            if len(self._queue) < self._queue_size and self._queued_bytes < self._queue_max_bytes:
                self._queue.append((segment, start, end, record))
                self._queued_bytes += end - start
            else:
                # The journal has it; the writer reads it back from there.
                self.overflows += 1
                LEDGER_OVERFLOWS.inc()
        self._submitted += 1
        if not self._wake.is_set():
            self._wake.set()

    # -- the background task ---------------------------------------------------------------------

    def _has_work(self) -> bool:
        segment = self._cursor_segment
        if self._queue or self._unjournaled or segment is None:
            return bool(self._queue or self._unjournaled)
        return self._cursor < segment.size or segment is not self.journal.current

    async def _run(self) -> None:
        await self._replay_orphans()
        self.startup_replay_done.set()
        next_scan = time.monotonic() + self.settings.orphan_scan_interval_s
        while True:
            if not self._has_work():
                if self._stopping:
                    return
                self._wake.clear()
                if not self._has_work():
                    timeout = max(0.0, next_scan - time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
            if time.monotonic() >= next_scan and not self._stopping:
                await self._replay_orphans()
                next_scan = time.monotonic() + self.settings.orphan_scan_interval_s
                continue
            if not self._has_work():
                continue
            if not self._stopping and not self._backlog and len(self._queue) < self.settings.batch_size:
                # Let the batch fill: one insert of many rows costs little more than one of one row.
                # Not while catching up (the last batch was full): then the next one is ready now.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), self.settings.flush_interval_s)
            if not await self._write_batch() and self._stopping:
                log.warning("ledger_drain_incomplete", pending_bytes=self.journal.pending_bytes())
                return

    def _take_batch(self) -> tuple[list[dict[str, Any]], Segment, int]:
        """Up to ``batch_size`` records in journal order from the cursor, and where they end."""
        limit = self.settings.batch_size
        batch: list[dict[str, Any]] = []
        segment = self._cursor_segment
        assert segment is not None
        offset = self._cursor
        queue = self._queue
        segments = self.journal.segments
        while len(batch) < limit:
            # Queue entries behind the cursor were already read back from the journal.
            while queue and (queue[0][0].seq < segment.seq or (queue[0][0] is segment and queue[0][1] < offset)):
                _, start, end, _ = queue.popleft()
                self._queued_bytes -= end - start
            if queue and queue[0][0] is segment and queue[0][1] == offset:
                _, start, offset, record = queue.popleft()
                self._queued_bytes -= offset - start
                batch.append(record)
                continue
            if offset < segment.size:
                # A gap the queue does not cover: read it from the journal.
                end = queue[0][1] if queue and queue[0][0] is segment else segment.size
                records, next_offset, bad = segment.read(offset, end, limit - len(batch))
                self._count_bad(bad)
                batch.extend(records)
                # Nothing parseable up to ``end`` (cannot happen below ``size``): skip rather than stall.
                offset = end if next_offset == offset else next_offset
                continue
            if segment.sealed and segment is not self.journal.current:
                segment = segments[segments.index(segment) + 1]
                offset = 0
                continue
            break
        return batch, segment, offset

    async def _write_batch(self) -> bool:
        """Write the next batch; False if stopping cut it short (it stays in the journal)."""
        if self._unjournaled:
            spare = [self._unjournaled.popleft() for _ in range(min(len(self._unjournaled), 1000))]
            if not await self._insert(spare, best_effort=True):
                if self._stopping:
                    return False
                self._unjournaled.extendleft(reversed(spare))
        batch, segment, offset = self._take_batch()
        self._backlog = len(batch) >= self.settings.batch_size
        if batch and not await self._insert(batch):
            return False
        self._advance(segment, offset)
        return True

    def _advance(self, segment: Segment, offset: int) -> None:
        """Everything before (segment, offset) is in the database: checkpoint, retire old segments."""
        for old in list(self.journal.segments):
            if old is segment:
                break
            old.committed = old.size
            self.journal.retire(old)
        self._cursor_segment, self._cursor = segment, offset
        try:
            segment.checkpoint(offset)
        except OSError as exc:
            log.warning("ledger_checkpoint_failed", error=str(exc))

    async def _insert(self, records: list[dict[str, Any]], *, best_effort: bool = False) -> bool:
        """Insert until it works (back-off between attempts). False only if stopping cut it short."""
        params, kept = await self._params(records)
        delay = _RETRY_FIRST_S
        attempts = 0
        while True:
            try:
                await self._inserter.insert_params(params)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempts += 1
                self.errors += 1
                if is_row_error(exc):
                    LEDGER_WRITE_ERRORS.labels(kind="data").inc()
                    await self._insert_one_by_one(params, kept)
                    break
                LEDGER_WRITE_ERRORS.labels(kind="database").inc()
                if attempts == 1 or attempts % 20 == 0:
                    log.warning("ledger_write_failed", error=str(exc)[:500], attempts=attempts, rows=len(params))
                if (best_effort or self._stopping) and attempts >= 3:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
                continue
            break
        self.written += len(params)
        LEDGER_WRITTEN.inc(len(params))
        return True

    async def _params(self, records: list[dict[str, Any]]) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
        """Driver parameters for each record (content mode applied); unusable records are set aside.

        This runs on the event loop that also serves requests, and redaction can take a fraction
        of a millisecond per record: the loop is given back every ``_SLICE_S`` of work. A batch with
        ``redacted`` records whose names are redacted too (``ledger.redact_names``) runs the
        named-entity model, milliseconds per record: it is prepared in a thread of its own instead."""
        redactor = self._redactor
        if redactor is not None and redactor.names and any(r.get("content_mode") == REDACTED for r in records):
            if self._redaction_thread is None:
                self._redaction_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-ledger-redact")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._redaction_thread, self._prepare, records)
        return await self._prepare_sliced(records)

    def _prepare(self, records: list[dict[str, Any]]) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
        params: list[tuple[Any, ...]] = []
        kept: list[dict[str, Any]] = []
        for record in records:
            self._prepare_one(record, params, kept)
        return params, kept

    async def _prepare_sliced(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
        params: list[tuple[Any, ...]] = []
        kept: list[dict[str, Any]] = []
        slice_end = time.perf_counter() + _SLICE_S
        for record in records:
            if time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + _SLICE_S
            self._prepare_one(record, params, kept)
        return params, kept

    def _prepare_one(self, record: dict[str, Any], params: list[tuple[Any, ...]], kept: list[dict[str, Any]]) -> None:
        try:
            row = apply_content_mode(record, self._redactor, self.settings.system_messages)
            params.append(self._inserter.params(row))
        except Exception:
            log.exception("ledger_record_invalid", request_id=str(record.get("id"))[:64])
            self._reject([record])
            return
        kept.append(record)

    async def _insert_one_by_one(self, params: list[tuple[Any, ...]], records: list[dict[str, Any]]) -> None:
        """Find the rows the database refuses; keep them in ``rejected.jsonl``, insert the rest."""
        for row, record in zip(params, records, strict=True):
            for attempt in range(3):
                try:
                    await self._inserter.insert_params([row])
                    break
                except Exception as exc:
                    if is_row_error(exc):
                        log.error("ledger_row_rejected", request_id=str(record.get("id"))[:64], error=str(exc)[:500])
                        self._reject([record])
                        break
                    if attempt == 2:
                        raise
                    await asyncio.sleep(_RETRY_FIRST_S)

    def _reject(self, records: list[dict[str, Any]]) -> None:
        path = self.journal.directory / REJECTED_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                for record in records:
                    os.write(fd, encode_record(record))
            finally:
                os.close(fd)
        except (OSError, TypeError, orjson.JSONEncodeError):
            log.exception("ledger_reject_failed")

    def _count_bad(self, bad: int) -> None:
        if bad:
            self.errors += bad
            LEDGER_WRITE_ERRORS.labels(kind="corrupt_line").inc(bad)
            log.error("ledger_journal_corrupt_lines", count=bad)

    # -- replay of dead processes' segments ------------------------------------------------------

    async def _replay_orphans(self) -> None:
        try:
            orphans = list(claim_orphans(self.journal.directory))
        except OSError as exc:
            log.error("ledger_orphan_scan_failed", error=str(exc))
            return
        for index, orphan in enumerate(orphans):
            if not await self._replay(orphan):
                for rest in orphans[index:]:
                    rest.segment.close()  # unlock: the next start (or scan) tries again
                return

    async def _replay(self, orphan: Orphan) -> bool:
        segment = orphan.segment
        offset = orphan.start
        count = 0
        while offset < segment.size:
            records, next_offset, bad = segment.read(offset, None, self.settings.batch_size)
            self._count_bad(bad)
            if next_offset == offset:
                break  # only a torn tail is left
            if records and not await self._insert(records):
                return False
            offset = next_offset
            count += len(records)
            with contextlib.suppress(OSError):
                segment.checkpoint(offset)
        segment.delete()
        self.replayed += count
        log.info("ledger_segment_replayed", segment=segment.path.name, records=count)
        return True

    # -- for tests and operators -----------------------------------------------------------------

    @property
    def submitted(self) -> int:
        return self._submitted

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything submitted so far is in the database."""
        deadline = time.monotonic() + timeout_s
        while self._has_work() or not self.startup_replay_done.is_set():
            if self._task is None or self._task.done():
                raise RuntimeError("the ledger writer is not running")
            if time.monotonic() > deadline:
                raise TimeoutError("ledger flush timed out")
            self._wake.set()
            await asyncio.sleep(0.005)
