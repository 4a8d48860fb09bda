"""What a bulk submission on an agent session is, as plain values: its items, the job payload it
is stored as, an item's stored outcome, and the checks a submission must pass (clear 400s).

A bulk is a job of kind ``bulk`` (``bastion/bulk/run.py`` runs it); its id is the job's id and
each item's outcome is a job item keyed by the item's id. Nothing here does I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from bastion.auth.principal import Identity
from bastion.errors import InvalidRequest

#: The job kind that runs every bulk submission.
JOB_KIND: Final = "bulk"
ID_PREFIX: Final = "bulk_"
#: An item id (given, or its index) and an operation label: short, printable, no spaces.
_LABEL: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_BODY_FIELDS: Final = frozenset({"agent_id", "items"})
_ITEM_FIELDS: Final = frozenset({"id", "operation", "message"})
#: Problems named in one 400.
_PROBLEMS_SHOWN: Final = 10


def new_bulk_id() -> str:
    return ID_PREFIX + uuid.uuid4().hex


def is_bulk_id(value: str) -> bool:
    return value.startswith(ID_PREFIX) and 0 < len(value) <= 64


@dataclass(frozen=True, slots=True)
class BulkItem:
    id: str
    operation: str
    message: str


@dataclass(frozen=True, slots=True)
class BulkPayload:
    """What the job stores: the session, who submitted it (resolved again when it runs) and the
    items in submission order."""

    agent_id: str
    owner_kind: str
    owner_id: str
    identity: Identity
    items: tuple[BulkItem, ...]

    def to_json(self) -> dict[str, Any]:
        who = self.identity
        return {
            "agent_id": self.agent_id,
            "owner": {"kind": self.owner_kind, "id": self.owner_id},
            "identity": {
                "tenant_id": who.tenant_id,
                "method": who.method,
                "key_id": who.key_id,
                "user_id": who.user_id,
            },
            "items": [[item.id, item.operation, item.message] for item in self.items],
        }

    @classmethod
    def from_json(cls, value: Any) -> BulkPayload:
        who = value["identity"]
        return cls(
            agent_id=str(value["agent_id"]),
            owner_kind=str(value["owner"]["kind"]),
            owner_id=str(value["owner"]["id"]),
            identity=Identity(who["tenant_id"], who["method"], who.get("key_id"), who.get("user_id")),
            items=tuple(BulkItem(str(i), str(op), str(message)) for i, op, message in value["items"]),
        )


def groups(items: Sequence[BulkItem]) -> list[list[BulkItem]]:
    """Items by operation, each group in submission order, groups in order of first appearance."""
    grouped: dict[str, list[BulkItem]] = {}
    for item in items:
        grouped.setdefault(item.operation, []).append(item)
    return list(grouped.values())


def check_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object.")
    unknown = sorted(set(body) - _BODY_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Invalid request: unknown field {unknown[0][:64]!r}; a bulk body has agent_id and items.",
            param=unknown[0][:64],
        )
    return body


def parse_items(value: Any, max_items: int) -> list[BulkItem]:
    """The submission's items, or one 400 naming (up to ten of) the problems."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest("Invalid request: items must be a non-empty array.", param="items")
    if len(value) > max_items:
        raise InvalidRequest(
            f"Invalid request: a bulk submission holds at most {max_items} items ({len(value)} sent).", param="items"
        )
    items: list[BulkItem] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        where = f"items[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where} must be an object of id, operation and message")
            continue
        unknown = sorted(set(raw) - _ITEM_FIELDS)
        if unknown:
            problems.append(f"{where} has an unknown field {unknown[0][:64]!r}")
            continue
        item_id = raw.get("id")
        if item_id is None:
            item_id = str(index)
        operation = raw.get("operation")
        message = raw.get("message")
        if not isinstance(item_id, str) or not _LABEL.fullmatch(item_id):
            problems.append(f"{where}.id must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        elif item_id in seen:
            problems.append(f"{where}.id {item_id!r} is used twice (an item without an id is named by its index)")
        if not isinstance(operation, str) or not _LABEL.fullmatch(operation):
            problems.append(f"{where}.operation must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        if not isinstance(message, str) or not message.strip():
            problems.append(f"{where}.message must be a non-empty string")
        if isinstance(item_id, str):
            seen.add(item_id)
        if not problems:
            assert isinstance(item_id, str) and isinstance(operation, str) and isinstance(message, str)
            items.append(BulkItem(item_id, operation, message))
    if problems:
        shown = "; ".join(problems[:_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - _PROBLEMS_SHOWN} more)" if len(problems) > _PROBLEMS_SHOWN else ""
        raise InvalidRequest(f"Invalid request: {shown}{more}.", param="items")
    return items


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item's outcome as a runner reports it; stored as the job item's result or error."""

    status_code: int
    #: The ledger's id of the item's exchange; None when the item never reached the pipeline.
    interaction_id: str | None
    answer: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float = 0.0
    #: The error body's ``error`` object (message, type, param, code) when it failed.
    error: dict[str, Any] | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def stored(self, operation: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operation": operation,
            "status_code": self.status_code,
            "interaction_id": self.interaction_id,
        }
        if self.error is not None:
            out["error"] = self.error
        else:
            out.update(answer=self.answer, usage=self.usage or {}, cost_usd=self.cost_usd)
        return out
