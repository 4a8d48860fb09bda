"""Choosing what to review from the ledger: successful chat interactions of one tenant whose content
the ledger kept, by a ``CandidateFilter``, that are not queued for the purpose yet; for pairwise
review, two different answers to the same input."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import Select, and_, exists, or_, select

from bastion.ledger.record import METADATA
from bastion.review.model import CandidateFilter
from bastion.review.models import ReviewItem
from bastion.store.db import Database
from bastion.store.models import Interaction

_PAGE = 500
#: Pairwise: interactions looked at per pair asked for (inputs repeat rarely).
_PAIR_SCAN = 20


def _query(tenant_id: str, purpose: str, f: CandidateFilter) -> Select[Any]:
    t = Interaction
    queued = exists().where(
        ReviewItem.tenant_id == tenant_id,
        ReviewItem.purpose == purpose,
        or_(ReviewItem.interaction_id == t.id, ReviewItem.pair_interaction_id == t.id),
    )
    conditions = [
        t.tenant_id == tenant_id,
        t.endpoint == "chat",
        t.status == 200,
        t.content_mode != METADATA,
        t.response_text.is_not(None),
        t.request_messages.is_not(None),
        ~queued,
    ]
    for name in ("model", "prompt_id", "prompt_version", "key_id", "user_id", "session_id", "flagged"):
        value = getattr(f, name)
        if value is not None:
            conditions.append(getattr(t, name) == value)
    if f.experiment_id is not None:
        conditions.append(t.experiment_id == f.experiment_id)
    if f.experiment_arm is not None:
        conditions.append(t.experiment_variant == f.experiment_arm)
    if f.since is not None:
        conditions.append(t.created_at >= f.since)
    if f.until is not None:
        conditions.append(t.created_at < f.until)
    columns = (t.id, t.created_at, t.request_messages, t.response_text, t.guard, t.extra)
    return select(*columns).where(and_(*conditions)).order_by(t.created_at, t.id)


def _guard_matches(guard: Any, f: CandidateFilter) -> bool:
    if f.guard_action is None and f.guard_scanner is None:
        return True
    if not isinstance(guard, dict):
        return False
    if f.guard_action is not None and guard.get("action") != f.guard_action:
        return False
    if f.guard_scanner is not None:
        flagged = False
        for side in ("input", "output"):
            scanners = (guard.get(side) or {}).get("scanners") or {}
            verdict = scanners.get(f.guard_scanner)
            flagged = flagged or bool(isinstance(verdict, dict) and verdict.get("flagged"))
        return flagged
    return True


async def _rows(db: Database, tenant_id: str, purpose: str, f: CandidateFilter, scan: int) -> AsyncIterator[Any]:
    query = _query(tenant_id, purpose, f)
    offset = 0
    async with db.engine.connect() as connection:
        while offset < scan:
            rows = (await connection.execute(query.limit(_PAGE).offset(offset))).all()
            for row in rows:
                if _guard_matches(row.guard, f):
                    yield row
            if len(rows) < _PAGE:
                return
            offset += _PAGE


async def single_candidates(db: Database, tenant_id: str, purpose: str, f: CandidateFilter) -> list[str]:
    """Interaction ids, oldest first, at most ``f.limit``."""
    out: list[str] = []
    async for row in _rows(db, tenant_id, purpose, f, scan=f.limit * _PAIR_SCAN):
        out.append(row.id)
        if len(out) >= f.limit:
            break
    return out


def input_key(messages: Any) -> str:
    """The identity of an input: its messages, canonically encoded."""
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def pair_candidates(db: Database, tenant_id: str, purpose: str, f: CandidateFilter) -> list[tuple[str, str]]:
    """(a, b): two interactions with the same input and different answers, at most ``f.limit``."""
    waiting: dict[str, tuple[str, str]] = {}
    pairs: list[tuple[str, str]] = []
    async for row in _rows(db, tenant_id, purpose, f, scan=f.limit * _PAIR_SCAN):
        key = input_key(row.request_messages)
        first = waiting.get(key)
        if first is None:
            waiting[key] = (row.id, row.response_text)
        elif first[1] != row.response_text:
            pairs.append((first[0], row.id))
            del waiting[key]
            if len(pairs) >= f.limit:
                break
    return pairs
