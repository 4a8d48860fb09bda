"""Running a batch: the handler of the ``batch`` job kind.

One attempt: validate the input (OpenAI batches; status validating -> in_progress), then run
every line whose outcome is not stored yet through the ``LineRunner``, ``batches.concurrency``
at a time, storing each outcome as a job item keyed by its ``custom_id`` the moment it is known.
A worker killed mid-batch loses only the lines in flight: the next attempt skips every stored
line, so each ``custom_id`` has exactly one outcome and the upstream sees at most the lines plus
those in flight at the kill. Then finalize: write the output and error files (OpenAI) or the
results file (Anthropic) from the items, and end as completed, cancelled or expired.

A line refused by the deployment's own rate limits (429 with Retry-After) waits and is tried
again, so a batch paces itself to the limits instead of failing its lines.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import structlog

from bastion.batches import formats
from bastion.batches.group_commit import GroupCommit
from bastion.batches.lines import LineDialect, LineOutcome, LineRequest, LineRunner
from bastion.batches.model import (
    ANTHROPIC_RESULTS_S,
    CANCELLED,
    CANCELLING,
    COMPLETED,
    EXPIRED,
    FAILED,
    FINALIZING,
    IN_PROGRESS,
    MESSAGES_URL,
    VALIDATING,
    BatchView,
)
from bastion.batches.store import BatchStore
from bastion.config.work_settings import BatchesSettings
from bastion.errors import NotFound
from bastion.files.batch_input import BatchInputError, parse_batch_line, validate_batch_input
from bastion.files.service import BATCH_EXPIRY_S, FileService, Owner
from bastion.jobs.context import JobContext
from bastion.jobs.model import ItemOutcome, ItemView

log = structlog.get_logger("bastion.batches")

#: Lines read from the input file per trip to a thread.
_READ_LINES = 256
#: Items read per query when writing the result files.
_ITEM_PAGE = 1000

_ERROR_CODES = (
    ("duplicate custom_id", "duplicate_custom_id"),
    ("does not match the batch's endpoint", "mismatched_endpoint"),
    ("not valid JSON", "invalid_json_line"),
    ("holds no requests", "empty_file"),
    ("more than", "too_many_requests"),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def file_owner(view: BatchView) -> Owner:
    """The batch's files belong to its creator, as its input file does."""
    return Owner(view.tenant_id, view.owner_kind, view.owner_id, False)


def validation_errors(exc: BatchInputError) -> list[dict[str, Any]]:
    """OpenAI's ``errors.data`` for an input file that breaks the rules."""
    out = []
    for line, text in exc.problems:
        code = next((code for needle, code in _ERROR_CODES if needle in text), "invalid_request")
        out.append({"code": code, "message": text, "param": None, "line": line or None})
    return out


def _stored(outcome: LineOutcome) -> dict[str, Any]:
    return {"status_code": outcome.status_code, "request_id": outcome.request_id, "body": outcome.body}


class BatchRun:
    """The ``batch`` job kind's handler (registered by the composition root)."""

    def __init__(
        self,
        store: BatchStore,
        files: FileService,
        lines: LineRunner,
        settings: BatchesSettings,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.files = files
        self.lines = lines
        self.settings = settings
        self.clock = clock

    async def run(self, job: JobContext) -> dict[str, Any]:
        batch_id = str((job.payload or {}).get("batch_id"))
        view = await self.store.load(batch_id)
        if view is None or view.final:  # deleted, or finished by an earlier attempt
            return {"batch_id": batch_id, "status": view.status if view else "deleted"}
        if view.status == VALIDATING:
            view = await self._validate(view)
            if view.final:
                return {"batch_id": batch_id, "status": view.status}
        ending = None
        if view.status == IN_PROGRESS or (view.status == CANCELLING and view.in_progress_at is not None):
            ending = await self._run_lines(job, view)
        return {"batch_id": batch_id, "status": await self._finalize(job, view, ending)}

    # -- validating --------------------------------------------------------------------------------

    async def _validate(self, view: BatchView) -> BatchView:
        """validating -> in_progress with the request count, or -> failed with the errors."""
        now = self.clock()
        try:
            _meta, handle = await self.files.open_content(file_owner(view), view.input_file_id)
        except NotFound:
            errors = [
                {
                    "code": "file_not_found",
                    "message": f"The input file {view.input_file_id} no longer exists.",
                    "param": "input_file_id",
                    "line": None,
                }
            ]
            await self.store.move(view.id, [VALIDATING, CANCELLING], status=FAILED, errors=errors, failed_at=now)
            return await self._reload(view)
        try:
            if view.api == "anthropic":  # written by Bastion from checked requests, counted at creation
                total = view.counts.total
            else:
                summary = await asyncio.to_thread(validate_batch_input, handle, endpoint=view.endpoint)
                total = summary.requests
        except BatchInputError as exc:
            await self.store.move(
                view.id, [VALIDATING, CANCELLING], status=FAILED, errors=validation_errors(exc), failed_at=now
            )
            return await self._reload(view)
        finally:
            await asyncio.to_thread(handle.close)
        await self.store.move(view.id, [VALIDATING], status=IN_PROGRESS, in_progress_at=now, request_total=total)
        # Cancelled while validating: it still ran nothing, and ends with every line unrun.
        await self.store.move(view.id, [CANCELLING], in_progress_at=now, request_total=total)
        return await self._reload(view)

    async def _reload(self, view: BatchView) -> BatchView:
        fresh = await self.store.load(view.id)
        return fresh if fresh is not None else view

    # -- running the lines -------------------------------------------------------------------------

    async def _run_lines(self, job: JobContext, view: BatchView) -> str | None:
        """Run the lines not done yet; the status the batch ends in if it stopped early
        (cancelled, expired), else None."""
        done = await job.done_items()
        total = view.counts.total
        job.progress(len(done), total)
        gate = asyncio.Semaphore(self.settings.concurrency)
        writer = GroupCommit(job.write_items)
        stopping: str | None = None
        checked = float("-inf")
        _meta, handle = await self.files.open_content(file_owner(view), view.input_file_id)
        try:
            async with asyncio.TaskGroup() as group:
                async for custom_id, url, body in _requests(view, handle):
                    if custom_id in done:
                        continue
                    # The window is a clock read, checked every line; a cancel needs a query.
                    stopping = self._expired(view)
                    if stopping is None and time.monotonic() - checked >= self.settings.status_poll_s:
                        checked = time.monotonic()
                        stopping = await self._should_stop(job, view)
                    if stopping is not None:
                        break
                    await gate.acquire()
                    line = LineRequest(view.owner, _dialect(view), url, body, view.id, custom_id)
                    group.create_task(self._line(job, view, line, gate, done, writer))
        finally:
            await asyncio.to_thread(handle.close)
        if stopping is None:
            stopping = await self._should_stop(job, view)
        return stopping

    async def _should_stop(self, job: JobContext, view: BatchView) -> str | None:
        if job.cancel_requested:
            return CANCELLED
        fresh = await self.store.load(view.id)
        if fresh is None or fresh.status == CANCELLING:
            return CANCELLED
        return self._expired(view)

    def _expired(self, view: BatchView) -> str | None:
        return EXPIRED if self.clock() >= view.expires_at else None

    async def _line(
        self,
        job: JobContext,
        view: BatchView,
        line: LineRequest,
        gate: asyncio.Semaphore,
        done: set[str],
        writer: GroupCommit,
    ) -> None:
        try:
            outcome = await self.lines.run(line)
            while outcome.status_code == 429 and outcome.retry_after_s is not None:
                wait = min(outcome.retry_after_s, self.settings.max_rate_limit_wait_s)
                remaining = (view.expires_at - self.clock()).total_seconds()
                if wait <= 0 or wait >= remaining:
                    break
                await asyncio.sleep(wait)  # the deployment's limits: pace the batch, do not fail it
                outcome = await self.lines.run(line)
            stored = _stored(outcome)
            await writer.write(
                ItemOutcome(line.custom_id, stored) if outcome.ok else ItemOutcome(line.custom_id, error=stored)
            )
            done.add(line.custom_id)
            job.progress(len(done))
        finally:
            gate.release()

    # -- finalizing --------------------------------------------------------------------------------

    async def _finalize(self, job: JobContext, view: BatchView, ending: str | None) -> str:
        """Move to finalizing, write the result files from the items, and end the batch."""
        now = self.clock()
        if ending is None:
            ending = COMPLETED
        moved = await self.store.move(view.id, [IN_PROGRESS], status=FINALIZING, finalizing_at=now)
        if not moved and await self.store.move(view.id, [CANCELLING], status=FINALIZING, finalizing_at=now):
            ending = CANCELLED
        fresh = await self._reload(view)
        if fresh.status != FINALIZING:
            return fresh.status
        if not moved and fresh.cancelling_at is not None:
            ending = CANCELLED  # an earlier attempt died while finalizing a cancelled batch
        counts = await job.item_counts()
        completed, failed = counts.get("succeeded", 0), counts.get("failed", 0)
        unfinished = max(0, fresh.counts.total - completed - failed)
        if ending == COMPLETED and unfinished:
            ending = EXPIRED if self._expired(fresh) else COMPLETED
        files = await self._write_results(job, fresh, ending, completed, failed, unfinished)
        await self.store.move(
            view.id,
            [FINALIZING],
            status=ending,
            request_completed=completed,
            request_failed=failed,
            request_unfinished=unfinished if ending != COMPLETED else 0,
            **files,
            **{f"{ending}_at": self.clock()},
        )
        log.info("batch_ended", batch_id=view.id, status=ending, completed=completed, failed=failed)
        return ending

    async def _write_results(
        self, job: JobContext, view: BatchView, ending: str, completed: int, failed: int, unfinished: int
    ) -> dict[str, str | None]:
        owner = file_owner(view)
        loop = asyncio.get_running_loop()
        unrun = unfinished > 0 and ending in (CANCELLED, EXPIRED)
        done = await job.done_items() if unrun else set()

        def items(status: str | None) -> Iterator[ItemView]:
            after: str | None = None
            while True:
                page = asyncio.run_coroutine_threadsafe(job.store.items(job.id, _ITEM_PAGE, after), loop).result()
                for item in page:
                    if status is None or item.status == status:
                        yield item
                if len(page) < _ITEM_PAGE:
                    return
                after = page[-1].key

        def unrun_ids() -> Iterator[str]:
            if not unrun:
                return
            try:
                handle = self.files.storage.open(view.input_file_id)
            except FileNotFoundError:  # the input file was deleted: its lines cannot be named
                return
            with handle:
                for custom_id in _custom_ids(view, handle):
                    if custom_id not in done:
                        yield custom_id

        async def keep(lines: Iterator[dict[str, Any]], name: str, expires_s: int) -> str:
            content = (orjson.dumps(line) + b"\n" for line in lines)
            stored = await self.files.add_file(
                owner,
                content,
                filename=name,
                expires_after_s=expires_s,
                user_id=view.owner.user_id,
                key_id=view.owner.key_id,
            )
            return str(stored["id"])

        if view.api == "anthropic":

            def results() -> Iterator[dict[str, Any]]:
                for item in items(None):
                    stored = item.result if item.error is None else item.error
                    yield formats.anthropic_result_line(item.key, int(stored["status_code"]), stored["body"])
                for custom_id in unrun_ids():
                    yield formats.anthropic_unrun_line(custom_id, ending)

            return {"results_file_id": await keep(results(), f"{view.id}_results.jsonl", ANTHROPIC_RESULTS_S)}

        def output() -> Iterator[dict[str, Any]]:
            for item in items("succeeded"):
                yield formats.openai_result_line(
                    item.key, item.result["status_code"], item.result["request_id"], item.result["body"]
                )

        def errors() -> Iterator[dict[str, Any]]:
            for item in items("failed"):
                yield formats.openai_result_line(
                    item.key, item.error["status_code"], item.error["request_id"], item.error["body"]
                )
            for custom_id in unrun_ids():
                yield formats.openai_unrun_line(custom_id, ending)

        # A batch whose every line failed has an error file and no output file, as OpenAI's.
        output_id = await keep(output(), f"{view.id}_output.jsonl", BATCH_EXPIRY_S) if completed else None
        error_id = await keep(errors(), f"{view.id}_error.jsonl", BATCH_EXPIRY_S) if failed or unrun else None
        return {"output_file_id": output_id, "error_file_id": error_id}


def _dialect(view: BatchView) -> LineDialect:
    return "anthropic" if view.api == "anthropic" else "openai"


def _custom_ids(view: BatchView, handle: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(handle, start=1):
        if raw.strip():
            yield _parse(view, raw, number)[0]


def _parse(view: BatchView, raw: bytes, number: int) -> tuple[str, str, dict[str, Any]]:
    if view.api == "anthropic":
        # Written by Bastion from a checked create request: {"custom_id", "params"}.
        value = orjson.loads(raw)
        return str(value["custom_id"]), MESSAGES_URL, dict(value["params"])
    line = parse_batch_line(raw, number, view.endpoint)
    return line.custom_id, line.url, line.body


async def _requests(view: BatchView, handle: IO[bytes]) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """The input file's requests in order, read in a thread a few hundred lines at a time."""
    numbered = enumerate(handle, start=1)
    while True:
        chunk = await asyncio.to_thread(lambda: list(itertools.islice(numbered, _READ_LINES)))
        if not chunk:
            return
        for number, raw in chunk:
            if not raw.strip():
                continue
            try:
                parsed = _parse(view, raw, number)
            except (ValueError, KeyError, TypeError) as exc:  # validated already: the file changed under us
                log.error("batch_line_unreadable", batch_id=view.id, line=number, error=str(exc)[:200])
                continue
            yield parsed
