"""What a reviewer sees of an interaction: its content as the ledger kept it, and no more than the
tenant's ledger policy allows now (a tenant that moved to ``redacted`` or ``metadata`` after the
interaction was recorded gets it redacted or withheld). No key, user, cost or guard details."""

from __future__ import annotations

from typing import Any

from bastion.ledger.record import CONTENT_MODES, FULL, METADATA, REDACTED
from bastion.ledger.redact import ContentRedactor, regex_redact
from bastion.review.models import DIMENSIONS, Review, ReviewAssignment, ReviewBatch, ReviewItem

_STRICTNESS = {mode: rank for rank, mode in enumerate(CONTENT_MODES)}
_redactor: ContentRedactor | None = None


def _redact() -> ContentRedactor:
    global _redactor
    if _redactor is None:
        _redactor = ContentRedactor(regex_redact)
    return _redactor


def content_view(row: dict[str, Any] | None, policy: str) -> dict[str, Any] | None:
    """An interaction's reviewable fields under ``policy`` (the tenant's ledger mode now)."""
    if row is None:
        return None
    stored = row.get("content_mode") or FULL
    mode = stored if _STRICTNESS.get(stored, 2) >= _STRICTNESS.get(policy, 2) else policy
    messages, answer = row.get("request_messages"), row.get("response_text")
    if mode == METADATA:
        messages = answer = None
    elif mode == REDACTED and stored == FULL:
        messages = _redact().content_messages(messages)
        answer = _redact().content(answer) if answer else answer
    created = row.get("created_at")
    return {
        "id": row["id"],
        "created_at": created.isoformat() if created is not None else None,
        "model": row.get("model"),
        "prompt_id": row.get("prompt_id"),
        "prompt_version": row.get("prompt_version"),
        "session_id": row.get("session_id"),
        "flagged": bool(row.get("flagged")),
        "content_mode": mode,
        "messages": messages,
        "answer": answer,
    }


def batch_json(batch: ReviewBatch, counts: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": batch.id,
        "object": "review_batch",
        "name": batch.name,
        "purpose": batch.purpose,
        "kind": batch.kind,
        "filter": batch.filter,
        "reviewers_per_item": batch.reviewers_per_item,
        "lease_s": batch.lease_s,
        "item_count": batch.item_count,
        "created_by": batch.created_by,
        "created_at": batch.created_at.isoformat(),
    }
    if counts is not None:
        out["counts"] = counts
    return out


def assignment_json(assignment: ReviewAssignment) -> dict[str, Any]:
    expires = assignment.lease_expires_at
    return {
        "id": assignment.id,
        "reviewer": assignment.reviewer,
        "state": assignment.state,
        "slot": assignment.slot,
        "lease_expires_at": expires.isoformat() if expires is not None and assignment.state == "leased" else None,
    }


def item_json(
    item: ReviewItem,
    interaction: dict[str, Any] | None,
    pair: dict[str, Any] | None = None,
    assignment: ReviewAssignment | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "object": "review_item",
        "batch_id": item.batch_id,
        "position": item.position,
        "purpose": item.purpose,
        "interaction": interaction,
    }
    if item.pair_interaction_id is not None:
        out["pair"] = pair
    if assignment is not None:
        out["assignment"] = assignment_json(assignment)
    return out


def review_json(review: Review) -> dict[str, Any]:
    scores = {name: getattr(review, name) for name in DIMENSIONS if getattr(review, name) is not None}
    return {
        "id": review.id,
        "object": "review",
        "item_id": review.item_id,
        "batch_id": review.batch_id,
        "reviewer": review.reviewer,
        "scores": scores,
        "feedback": review.feedback,
        "verdict": review.verdict,
        "corrected_answer": review.corrected_answer,
        "preferred": review.preferred,
        "created_at": review.created_at.isoformat(),
    }
