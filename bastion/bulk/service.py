"""Bulk on agent sessions (seed 000): submit a bulk of items on a session, read its status.

Submitting checks the body, the session (the caller's, active: 404 / 410 as chat answers) and
every item's size against the session's window, then admits one bulk submission in the owner's
limit (``bulk.per_minute``, 429 with Retry-After), and stores a job of kind ``bulk``: one INSERT
and a broker message, nothing runs on the request path. The status is read from the job and its
items: per-operation aggregates and each item's answer or error, for the owner only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from bastion.auth.principal import Principal
from bastion.bulk.model import JOB_KIND, BulkItem, BulkPayload, check_body, is_bulk_id, new_bulk_id, parse_items
from bastion.config.work_settings import BulkSettings
from bastion.errors import InvalidRequest, NotFound
from bastion.jobs.model import ItemView, JobView, NewJob
from bastion.jobs.service import JobService
from bastion.sessions.service import SessionService, owner_of, parse_agent_id
from bastion.sessions.window import message_tokens

#: Items read per query for a status.
_ITEM_PAGE = 1000
_TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class BulkService:
    def __init__(self, jobs: JobService, sessions: SessionService, settings: BulkSettings) -> None:
        self.jobs = jobs
        self.sessions = sessions
        self.settings = settings

    async def submit(self, principal: Principal, body: Any, request_id: str) -> dict[str, Any]:
        body = check_body(body)
        agent_id = parse_agent_id(body.get("agent_id"))
        items = parse_items(body.get("items"), self.settings.max_items)
        row, plan = await self.sessions.bulk_target(principal, agent_id)
        await _check_sizes(items, plan.budget)
        owner = owner_of(principal)
        # Last check, so a refused submission takes no place in the limit.
        await self.sessions.limiter.admit_bulk(request_id, owner)
        payload = BulkPayload(row.agent_id, owner.kind, owner.id, principal.identity, tuple(items))
        job = await self.jobs.submit(
            NewJob(
                JOB_KIND,
                payload.to_json(),
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                user_id=principal.user_id,
                progress_total=len(items),
                id=new_bulk_id(),
            )
        )
        return bulk_view(job, payload, [], results=False)

    async def status(self, principal: Principal, bulk_id: str) -> dict[str, Any]:
        """The bulk, if the caller owns its session (the same 404 as for an unknown id otherwise)."""
        missing = NotFound("No bulk batch with this id.", param="batch_id")
        if not is_bulk_id(bulk_id):
            raise missing
        try:
            job = await self.jobs.get(bulk_id, principal.tenant_id)
        except NotFound:
            raise missing from None
        payload = BulkPayload.from_json(job.payload) if job.kind == JOB_KIND else None
        owner = owner_of(principal)
        if payload is None or (payload.owner_kind, payload.owner_id) != (owner.kind, owner.id):
            raise missing
        stored: list[ItemView] = []
        after: str | None = None
        while True:
            page = await self.jobs.items(job.id, _ITEM_PAGE, after)
            stored.extend(page)
            if len(page) < _ITEM_PAGE:
                break
            after = page[-1].key
        return bulk_view(job, payload, stored)


async def _check_sizes(items: list[BulkItem], budget: int) -> None:
    """400 for the first item whose message does not fit the session's window. A message of no
    more UTF-8 bytes than the budget fits without counting (a byte-level BPE token is at least one
    byte); the others are counted in a thread, off the event loop."""
    markup = message_tokens("user", "")
    unsure = [(index, item) for index, item in enumerate(items) if markup + len(item.message.encode()) > budget]
    if not unsure:
        return
    counts = await asyncio.to_thread(lambda: [message_tokens("user", item.message) for _, item in unsure])
    for (index, _), tokens in zip(unsure, counts, strict=True):
        if tokens > budget:
            raise InvalidRequest(
                f"Invalid request: items[{index}].message ({tokens} tokens) does not fit the model's context "
                f"window ({budget} tokens for the message).",
                param=f"items[{index}].message",
            )


def _zero() -> dict[str, Any]:
    return {"items": 0, "succeeded": 0, "failed": 0, "pending": 0, **dict.fromkeys(_TOKENS, 0), "cost_usd": 0.0}


def _add(total: dict[str, Any], status: str, outcome: dict[str, Any] | None) -> None:
    total["items"] += 1
    total[status] += 1
    if outcome is not None and status == "succeeded":
        usage = outcome.get("usage") or {}
        for name in _TOKENS:
            total[name] += int(usage.get(name) or 0)
        total["cost_usd"] += float(outcome.get("cost_usd") or 0.0)


def _result(item: BulkItem, stored: ItemView | None) -> dict[str, Any]:
    if stored is None:
        return {"id": item.id, "operation": item.operation, "status": "pending"}
    outcome = stored.result if stored.error is None else stored.error
    out = {"id": item.id, "operation": item.operation, "status": stored.status}
    out.update({key: value for key, value in outcome.items() if key != "operation"})
    return out


def bulk_view(
    job: JobView, payload: BulkPayload, stored: Iterable[ItemView], *, results: bool = True
) -> dict[str, Any]:
    """A bulk as its owner sees it: status, counts, per-operation aggregates and (``results``) each
    item's result in submission order. ``input_tokens`` counts the cache's writes and reads too."""
    by_id = {item.key: item for item in stored}
    total = _zero()
    operations: dict[str, dict[str, Any]] = {}
    shown = []
    for item in payload.items:
        found = by_id.get(item.id)
        status = found.status if found is not None else "pending"
        outcome = None if found is None else (found.result if found.error is None else found.error)
        for bucket in (total, operations.setdefault(item.operation, _zero())):
            _add(bucket, status, outcome)
        if results:
            shown.append(_result(item, found))
    for bucket in (total, *operations.values()):
        bucket["cost_usd"] = round(bucket["cost_usd"], 10)
    view = {
        "id": job.id,
        "object": "bulk_batch",
        "agent_id": payload.agent_id,
        "status": job.state,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "counts": {name: total[name] for name in ("items", "succeeded", "failed", "pending")},
        "usage": {name: total[name] for name in _TOKENS},
        "cost_usd": total["cost_usd"],
        "operations": operations,
    }
    if results:
        view["results"] = shown
    return view
