"""Stored responses: saved per the tenant's ledger mode, read and deleted within the tenant only,
and deleted after ``responses.retention_days`` by a background sweep (never on the request path).

Content follows the ledger's policy (docs/LEDGER.md): ``full`` keeps the items as sent and
answered, ``redacted`` keeps them with PII and secrets replaced (what ``previous_response_id`` then
continues from), ``metadata`` keeps none: such a response can be fetched (without output) and
deleted, but not continued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select

from bastion.config.work_settings import ResponsesSettings
from bastion.errors import InvalidRequest, NotFound
from bastion.ledger.record import FULL, METADATA, REDACTED
from bastion.ledger.redact import ContentRedactor
from bastion.responses.models import StoredResponse
from bastion.store.db import Database
from bastion.store.periodic import PeriodicSweep

log = structlog.get_logger("bastion.responses")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Continuation:
    """What a response continues from: the conversation's items so far (its input and output)."""

    items: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, db: Database, settings: ResponsesSettings, clock: Callable[[], datetime] = _utcnow) -> None:
        self.db = db
        self.settings = settings
        #: UTC "now"; tests replace it to move time without sleeping.
        self.clock = clock
        self._redactor: ContentRedactor | None = None
        self._sweeper = PeriodicSweep(
            "responses", lambda: self.settings.sweep_interval_s, self.sweep, "bastion.responses"
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    async def sweep(self) -> int:
        """Delete every stored response past its retention; how many this call deleted."""
        async with self.db.transaction() as session:
            result = await session.execute(delete(StoredResponse).where(StoredResponse.expires_at <= self.clock()))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- content policy ----------------------------------------------------------------------------

    def _redact(self, value: Any) -> Any:
        if self._redactor is None:
            self._redactor = ContentRedactor()  # builds the guard's detectors: only once redacted mode is used
        redactor = self._redactor
        if isinstance(value, list):
            return [self._redact(item) for item in value]
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                if key in ("text", "refusal", "arguments", "output") and isinstance(inner, str):
                    out[key] = redactor.text(inner)
                elif isinstance(inner, list | dict) and key != "metadata":
                    out[key] = self._redact(inner)
                else:
                    out[key] = inner
            return out
        return value

    # -- rows --------------------------------------------------------------------------------------

    async def save(
        self, tenant_id: str, response: dict[str, Any], conversation: list[dict[str, Any]], mode: str
    ) -> None:
        """Store ``response`` and the conversation it answered (all input items, history first)."""
        if mode not in (FULL, REDACTED):
            mode = METADATA
        kept_items: list[dict[str, Any]] | None
        kept_response = dict(response)
        if mode == FULL:
            kept_items = conversation
        elif mode == REDACTED:
            kept_items = self._redact(conversation)
            kept_response["output"] = self._redact(response.get("output") or [])
            if kept_response.get("instructions"):
                kept_response["instructions"] = self._redact({"text": kept_response["instructions"]})["text"]
        else:
            kept_items = None
            kept_response["output"] = []
            kept_response["instructions"] = None
        now = self.clock()
        row = StoredResponse(
            id=response["id"],
            tenant_id=tenant_id,
            created_at=now,
            expires_at=now + timedelta(days=self.settings.retention_days),
            model=str(response.get("model") or "")[:256],
            status=str(response.get("status") or "completed")[:16],
            content_mode=mode,
            previous_response_id=response.get("previous_response_id"),
            input_items=kept_items,
            response=kept_response,
        )
        async with self.db.transaction() as session:
            session.add(row)

    async def _row(self, tenant_id: str, response_id: str) -> StoredResponse:
        async with self.db.session() as session:
            row = await session.scalar(
                select(StoredResponse).where(
                    StoredResponse.id == response_id,
                    StoredResponse.tenant_id == tenant_id,
                    StoredResponse.expires_at > self.clock(),
                )
            )
        if row is None:
            # Another tenant's response and an unknown id answer alike: existence is not revealed.
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return row

    async def get(self, tenant_id: str, response_id: str) -> dict[str, Any]:
        row = await self._row(tenant_id, response_id)
        return dict(row.response)

    async def input_items(self, tenant_id: str, response_id: str) -> list[dict[str, Any]]:
        row = await self._row(tenant_id, response_id)
        return list(row.input_items or [])

    async def continuation(self, tenant_id: str, response_id: str) -> Continuation:
        """The conversation to continue from ``response_id`` (404 if not this tenant's)."""
        try:
            row = await self._row(tenant_id, response_id)
        except NotFound:
            raise NotFound(
                f"Previous response with id '{response_id}' not found.", param="previous_response_id"
            ) from None
        if row.input_items is None:
            raise InvalidRequest(
                f"Previous response '{response_id}' was stored without its content (the tenant's ledger mode "
                "is metadata), so it cannot be continued; send the conversation as input.",
                param="previous_response_id",
            )
        output = [item for item in row.response.get("output") or () if isinstance(item, dict)]
        return Continuation(items=[*row.input_items, *output])

    async def delete(self, tenant_id: str, response_id: str) -> None:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(StoredResponse).where(StoredResponse.id == response_id, StoredResponse.tenant_id == tenant_id)
            )
        if not getattr(result, "rowcount", 0):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
