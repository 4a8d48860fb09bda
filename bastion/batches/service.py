"""The batch APIs' operations, for both dialects: create, read, list, cancel, delete, results.

A batch is a row in ``batches`` plus a job of kind ``batch`` (``bastion/batches/run.py`` runs it).
Creating one is an INSERT and a job submit: nothing runs on the request path. Every read is
scoped like files are: the creator sees their batches, the tenant's admins see the tenant's.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Final

import orjson
import structlog

from bastion.auth.principal import Principal
from bastion.batches.model import (
    ACTIVE,
    ANTHROPIC_MAX_REQUESTS,
    ANTHROPIC_RESULTS_S,
    CANCELLED,
    CANCELLING,
    COMPLETION_WINDOWS,
    FAILED,
    FINALIZING,
    JOB_KIND,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MESSAGES_URL,
    OPENAI_ENDPOINTS,
    VALIDATING,
    BatchApi,
    BatchView,
    RequestCounts,
    new_batch_id,
)
from bastion.batches.models import Batch
from bastion.batches.store import BatchStore
from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.files.service import BATCH, FileService, Owner, expiry_seconds, owner_of
from bastion.jobs.model import CANCELLED as JOB_CANCELLED
from bastion.jobs.model import FAILED as JOB_FAILED
from bastion.jobs.model import NewJob, new_job_id
from bastion.jobs.service import JobService

log = structlog.get_logger("bastion.batches")

_OPENAI_FIELDS: Final = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
)
_CUSTOM_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Problems named in one 400 about a message batch's requests.
_PROBLEMS_SHOWN: Final = 10


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_metadata(value: Any) -> dict[str, str] | None:
    """OpenAI's metadata: up to 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid request: metadata must be an object of strings.", param="metadata")
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequest(f"Invalid request: metadata holds at most {MAX_METADATA_PAIRS} pairs.", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidRequest(f"Invalid request: metadata[{key[:64]!r}] must be a string.", param="metadata")
        if len(key) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"Invalid request: metadata keys are at most {MAX_METADATA_KEY} characters and values at most "
                f"{MAX_METADATA_VALUE}.",
                param="metadata",
            )
    return dict(value)


def check_message_requests(body: Any, max_requests: int = ANTHROPIC_MAX_REQUESTS) -> list[dict[str, Any]]:
    """A message batch's ``requests``: 1 to 100,000 of ``{custom_id, params}``, ``custom_id``
    1-64 of ``[A-Za-z0-9_-]`` and unique, ``params`` an object naming its ``model``. The params
    themselves are checked when each request runs, as Anthropic does (an ``errored`` result)."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object with requests.", param="requests")
    unknown = sorted(set(body) - {"requests"})
    if unknown:
        raise InvalidRequest(f"Invalid request: unknown field {unknown[0][:64]!r}.", param=unknown[0][:64])
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("Invalid request: requests must be a non-empty array.", param="requests")
    if len(requests) > max_requests:
        raise InvalidRequest(
            f"Invalid request: a message batch holds at most {max_requests:,} requests, not {len(requests):,}.",
            param="requests",
        )
    problems: list[str] = []
    seen: set[str] = set()
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
            problems.append(f"{where}: must be an object with exactly custom_id and params")
            continue
        custom_id, params = request["custom_id"], request["params"]
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            problems.append(f"{where}.custom_id: must be 1 to 64 letters, digits, '_' or '-'")
        elif custom_id in seen:
            problems.append(f"{where}.custom_id: duplicate {custom_id!r}")
        else:
            seen.add(custom_id)
        if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
            problems.append(f"{where}.params: must be an object naming its model")
        elif params.get("stream"):
            problems.append(f"{where}.params.stream: streaming is not available in a batch")
        if len(problems) > _PROBLEMS_SHOWN:
            break
    if problems:
        shown = "; ".join(problems[:_PROBLEMS_SHOWN])
        raise InvalidRequest(f"Invalid request: {shown}.", param="requests")
    return requests


class BatchService:
    def __init__(
        self, store: BatchStore, files: FileService, jobs: JobService, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.store = store
        self.files = files
        self.jobs = jobs
        self.clock = clock

    # -- creating ----------------------------------------------------------------------------------

    async def create_openai(self, principal: Principal, body: Any) -> BatchView:
        if not isinstance(body, dict):
            raise InvalidRequest("Invalid request: the body must be a JSON object.")
        unknown = sorted(set(body) - _OPENAI_FIELDS)
        if unknown:
            raise InvalidRequest(f"Invalid request: unknown field {unknown[0][:64]!r}.", param=unknown[0][:64])
        input_file_id, endpoint, window = body.get("input_file_id"), body.get("endpoint"), body.get("completion_window")
        if not isinstance(input_file_id, str) or not input_file_id:
            raise InvalidRequest("Invalid request: input_file_id is required.", param="input_file_id")
        if endpoint not in OPENAI_ENDPOINTS:
            raise InvalidRequest(
                f"Invalid request: endpoint must be one of {', '.join(OPENAI_ENDPOINTS)}"
                f"{'' if endpoint is None else f', not {str(endpoint)[:64]!r}'}.",
                param="endpoint",
            )
        if window not in COMPLETION_WINDOWS:
            raise InvalidRequest(
                f"Invalid request: completion_window must be {', '.join(COMPLETION_WINDOWS)}.",
                param="completion_window",
            )
        metadata = check_metadata(body.get("metadata"))
        output_expiry = body.get("output_expires_after")
        if output_expiry is not None and (
            not isinstance(output_expiry, dict)
            or expiry_seconds(str(output_expiry.get("anchor")), str(output_expiry.get("seconds"))) is None
        ):
            raise InvalidRequest(
                "Invalid request: output_expires_after is {anchor: created_at, seconds: 3600..2592000}.",
                param="output_expires_after",
            )
        try:
            stored = await self.files.retrieve(principal, input_file_id)
        except NotFound:
            raise InvalidRequest(f"Invalid request: no file {input_file_id[:80]!r}.", param="input_file_id") from None
        if stored["purpose"] != BATCH:
            raise InvalidRequest(
                f"Invalid request: the input file's purpose is {stored['purpose']}; a batch reads a file uploaded "
                "with purpose batch.",
                param="input_file_id",
            )
        return await self._submit(principal, "openai", str(endpoint), input_file_id, str(window), metadata)

    async def create_anthropic(self, principal: Principal, body: Any) -> BatchView:
        requests = check_message_requests(body)

        def lines() -> Iterator[bytes]:
            for request in requests:
                yield orjson.dumps({"custom_id": request["custom_id"], "params": request["params"]}) + b"\n"

        owner = owner_of(principal)
        stored = await self.files.add_file(
            owner,
            lines(),
            filename="message_batch_requests.jsonl",
            purpose=BATCH,
            expires_after_s=ANTHROPIC_RESULTS_S,
            user_id=principal.user_id,
            key_id=principal.key_id,
        )
        return await self._submit(principal, "anthropic", MESSAGES_URL, str(stored["id"]), "24h", None, len(requests))

    async def _submit(
        self,
        principal: Principal,
        api: BatchApi,
        endpoint: str,
        input_file_id: str,
        window: str,
        metadata: dict[str, str] | None,
        total: int = 0,
    ) -> BatchView:
        now = self.clock()
        owner = owner_of(principal)
        batch_id, job_id = new_batch_id(api), new_job_id()
        # The row first, so the job never runs before its batch exists.
        view = await self.store.add(
            Batch(
                id=batch_id,
                api=api,
                tenant_id=principal.tenant_id,
                owner_kind=owner.kind,
                owner_id=owner.id,
                owner_method=principal.method,
                key_id=principal.key_id,
                user_id=principal.user_id,
                job_id=job_id,
                endpoint=endpoint,
                input_file_id=input_file_id,
                completion_window=window,
                batch_metadata=metadata,
                status=VALIDATING,
                request_total=total,
                request_completed=0,
                request_failed=0,
                request_unfinished=0,
                created_at=now,
                expires_at=now + timedelta(seconds=COMPLETION_WINDOWS[window]),
            )
        )
        await self.jobs.submit(
            NewJob(
                kind=JOB_KIND,
                payload={"batch_id": batch_id},
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                user_id=principal.user_id,
                progress_total=total or None,
                id=job_id,
            )
        )
        log.info("batch_created", batch_id=batch_id, api=api, endpoint=endpoint, tenant_id=principal.tenant_id)
        return view

    # -- reading -----------------------------------------------------------------------------------

    async def get(self, who: Principal | Owner, api: BatchApi, batch_id: str) -> BatchView:
        view = await self.store.get(_as_owner(who), api, batch_id)
        return await self._settled(view)

    async def page(
        self, who: Principal | Owner, api: BatchApi, limit: int, *, after: str | None = None, before: str | None = None
    ) -> tuple[list[BatchView], bool]:
        try:
            views, more = await self.store.page(_as_owner(who), api, limit, after=after, before=before)
        except NotFound:
            param = "before_id" if before is not None else "after"
            raise InvalidRequest(
                f"Invalid request: no batch {(before or after or '')[:80]!r} to page from.", param=param
            ) from None
        return [await self._settled(view) for view in views], more

    async def counts(self, view: BatchView) -> BatchView:
        """A running batch's counts from its stored items (final batches carry their own)."""
        if view.final or view.status == VALIDATING:
            return view
        items = await self.jobs.item_counts(view.job_id)
        return replace(view, counts=RequestCounts(view.counts.total, items.get("succeeded", 0), items.get("failed", 0)))

    async def _settled(self, view: BatchView) -> BatchView:
        """A batch whose job ended without finishing it (attempts used up, cancelled by an admin)
        is failed here, so it never shows as running forever."""
        if view.final:
            return view
        try:
            job = await self.jobs.get(view.job_id)
        except NotFound:
            job = None
        if job is not None and job.state in (JOB_FAILED, JOB_CANCELLED):
            reason = job.error or ("the batch's job was cancelled" if job.state == JOB_CANCELLED else "unknown error")
            now = self.clock()
            if view.status == CANCELLING or (job.state == JOB_CANCELLED and view.in_progress_at is None):
                await self.store.move(view.id, [*ACTIVE, CANCELLING], status=CANCELLED, cancelled_at=now)
            else:
                await self.store.move(
                    view.id, [*ACTIVE, CANCELLING, FINALIZING], status=FAILED, failed_at=now, error_text=reason[:2000]
                )
            fresh = await self.store.load(view.id)
            return fresh if fresh is not None else view
        return await self.counts(view)

    # -- cancel, delete, results -------------------------------------------------------------------

    async def cancel(self, principal: Principal, api: BatchApi, batch_id: str) -> BatchView:
        view = await self.get(principal, api, batch_id)
        if view.status == CANCELLING:
            return view
        now = self.clock()
        if not await self.store.move(view.id, ACTIVE, status=CANCELLING, cancelling_at=now):
            raise Conflict(f"Cannot cancel a batch that is {view.status}.", param="batch_id")
        # Never started: no worker will come to finalize it, so it ends here with nothing run.
        if view.in_progress_at is None and await self.jobs.cancel_queued(view.job_id):
            await self.store.move(
                view.id, [CANCELLING], status=CANCELLED, cancelled_at=now, request_unfinished=view.counts.total
            )
        log.info("batch_cancel_requested", batch_id=view.id)
        return await self.get(principal, api, batch_id)

    async def delete(self, principal: Principal, api: BatchApi, batch_id: str) -> BatchView:
        view = await self.get(principal, api, batch_id)
        if not view.final:
            raise Conflict(
                f"Batch {view.id} is still processing; cancel it and wait for it to end before deleting it.",
                param="batch_id",
            )
        owner = Owner(view.tenant_id, view.owner_kind, view.owner_id, False)
        # Its result files, and for a message batch its requests (Bastion's own copy of them).
        mine = view.input_file_id if view.api == "anthropic" else None
        for file_id in (view.results_file_id, view.output_file_id, view.error_file_id, mine):
            if file_id:
                with contextlib.suppress(NotFound):
                    await self.files.delete(owner, file_id)
        await self.store.delete(view.id)
        log.info("batch_deleted", batch_id=view.id)
        return view

    async def open_results(self, principal: Principal, batch_id: str) -> BinaryIO:
        """A message batch's results (JSONL), open for reading; 409 while it is processing."""
        view = await self.get(principal, "anthropic", batch_id)
        if not view.final or not view.results_file_id:
            raise Conflict(f"Batch {view.id} has no results yet: it is still processing.", param="batch_id")
        owner = Owner(view.tenant_id, view.owner_kind, view.owner_id, False)
        _meta, handle = await self.files.open_content(owner, view.results_file_id)
        return handle


def _as_owner(who: Principal | Owner) -> Owner:
    return who if isinstance(who, Owner) else owner_of(who)
