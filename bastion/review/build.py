"""Building a dataset version: the approved examples of the reviewed items, frozen.

An item of a ``single`` batch becomes an SFT example when it passes the thresholds (see
``service.item_passes``): its input is the interaction's messages as the ledger kept them (the whole
session history the client sent: multi-turn, tool calls and results included; only the last user
turn with ``multi_turn: false``), its target the reviewers' latest correction if one corrected it,
else the original answer (kept beside it as ``original_answer``). An item of a ``pairwise`` batch
becomes a preference example when most of its reviewers preferred the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidRequest
from bastion.review.model import APPROVE, NEEDS_EDIT, bool_field, int_field, only_fields, text_field
from bastion.review.models import DIMENSIONS, Review, ReviewItem
from bastion.review.outcomes import item_passes
from bastion.usage import count_messages, count_text

BUILD_FIELDS = frozenset({"purpose", "batch_ids", "kind", "min_quality", "min_reviews", "multi_turn"})


@dataclass(frozen=True, slots=True)
class BuildSpec:
    purpose: str
    kind: str
    batch_ids: tuple[str, ...]
    min_quality: float
    min_reviews: int
    multi_turn: bool

    @classmethod
    def parse(cls, body: Any, default_quality: float) -> BuildSpec:
        body = only_fields(body or {}, BUILD_FIELDS, "the body")
        kind = text_field(body, "kind", 16, "sft") or "sft"
        if kind not in ("sft", "preference"):
            raise InvalidRequest("Invalid request: kind must be sft or preference.", param="kind")
        batch_ids = body.get("batch_ids") or []
        if not isinstance(batch_ids, list) or not all(isinstance(b, str) and len(b) <= 32 for b in batch_ids):
            raise InvalidRequest("Invalid request: batch_ids must be a list of review batch ids.", param="batch_ids")
        quality = body.get("min_quality", default_quality)
        if isinstance(quality, bool) or not isinstance(quality, int | float) or not 1 <= quality <= 5:
            raise InvalidRequest("Invalid request: min_quality must be a number from 1 to 5.", param="min_quality")
        multi = bool_field(body, "multi_turn")
        return cls(
            purpose=text_field(body, "purpose", 64, "sft" if kind == "sft" else "preference") or kind,
            kind=kind,
            batch_ids=tuple(batch_ids),
            min_quality=float(quality),
            min_reviews=int_field(body, "min_reviews", 1, 10, 1) or 1,
            multi_turn=True if multi is None else multi,
        )

    def filter_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "kind": self.kind,
            "batch_ids": list(self.batch_ids),
            "multi_turn": self.multi_turn,
        }

    def thresholds_json(self) -> dict[str, Any]:
        return {"min_quality": self.min_quality, "min_reviews": self.min_reviews, "verdict": "majority approve"}


def _last_turn(messages: list[Any]) -> list[Any]:
    """Single-turn: the system messages and the last user message."""
    system = [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return [*system, *users[-1:]]


def sft_example(row: dict[str, Any], reviews: Sequence[Review], spec: BuildSpec) -> dict[str, Any] | None:
    if not item_passes(reviews, spec.min_quality, spec.min_reviews):
        return None
    messages = row.get("request_messages")
    if isinstance(messages, list) and not spec.multi_turn:
        messages = _last_turn(messages)
    edits = sorted(
        (r for r in reviews if r.verdict in (APPROVE, NEEDS_EDIT) and r.corrected_answer),
        key=lambda r: (r.created_at, r.id),
    )
    original = row.get("response_text")
    example: dict[str, Any] = {
        "interaction_id": row["id"],
        "messages": messages,
        "answer": edits[-1].corrected_answer if edits else original,
    }
    if edits:
        example["original_answer"] = original
    extra = row.get("extra") or {}
    if isinstance(extra, dict) and isinstance(extra.get("tools"), list):
        example["tools"] = extra["tools"]
    example.update(_source(row))
    scores = [getattr(r, d) for r in reviews for d in DIMENSIONS if getattr(r, d) is not None]
    example["quality"] = round(sum(scores) / len(scores), 4) if scores else None
    example["reviews"] = len(reviews)
    return example


def preference_example(
    item: ReviewItem, first: dict[str, Any], second: dict[str, Any], reviews: Sequence[Review], spec: BuildSpec
) -> dict[str, Any] | None:
    votes = [r.preferred for r in reviews if r.preferred in ("a", "b")]
    if len(votes) < spec.min_reviews:
        return None
    a, b = votes.count("a"), votes.count("b")
    if a == b:
        return None
    winner, loser = (first, second) if a > b else (second, first)
    messages = first.get("request_messages")
    if isinstance(messages, list) and not spec.multi_turn:
        messages = _last_turn(messages)
    return {
        "interaction_id": item.interaction_id,
        "pair_interaction_id": item.pair_interaction_id,
        "messages": messages,
        "preferred": winner.get("response_text"),
        "non_preferred": loser.get("response_text"),
        **_source(first),
        "reviews": len(votes),
    }


def _source(row: dict[str, Any]) -> dict[str, Any]:
    return {"prompt_id": row.get("prompt_id"), "prompt_version": row.get("prompt_version"), "model": row.get("model")}


class ManifestStats:
    """Counts and token statistics of a version's examples, accumulated as they are built."""

    def __init__(self) -> None:
        self.examples = 0
        self.edited = 0
        self.multi_turn = 0
        self.tool_calls = 0
        self.vault_prompt = 0
        self.tokens: list[int] = []

    def add(self, example: dict[str, Any]) -> None:
        self.examples += 1
        raw = example.get("messages")
        messages: list[Any] = raw if isinstance(raw, list) else []
        turns = [m for m in messages if isinstance(m, dict) and m.get("role") in ("user", "assistant", "tool")]
        self.multi_turn += len(turns) > 1
        self.tool_calls += any(
            isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool") for m in messages
        )
        self.edited += "original_answer" in example
        self.vault_prompt += example.get("prompt_id") is not None
        answer = example.get("answer") if "answer" in example else example.get("preferred")
        self.tokens.append(count_messages([m for m in messages if isinstance(m, dict)]) + count_text(str(answer or "")))

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.tokens)
        tokens: dict[str, Any] = {"total": sum(ordered)}
        if ordered:
            tokens.update(
                min=ordered[0],
                max=ordered[-1],
                mean=round(sum(ordered) / len(ordered), 2),
                p50=ordered[len(ordered) // 2],
                p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            )
        return {
            "counts": {
                "examples": self.examples,
                "edited": self.edited,
                "multi_turn": self.multi_turn,
                "with_tool_calls": self.tool_calls,
                "with_vault_prompt": self.vault_prompt,
            },
            "tokens": tokens,
        }
