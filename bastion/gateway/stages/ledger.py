"""Ledger stage: records every interaction durably (journal first, database in the background).

It sits early in the stage list so that its ``on_complete`` runs last, after usage, cost and limits
have filled the context. ``on_complete`` runs before the endpoint sends a complete answer and
before the last bytes of a stream, so by the time a client has its answer the record is in the
journal (see docs/LEDGER.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.ledger.record import build_record, content_mode
from bastion.ledger.writer import LedgerWriter

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

log = structlog.get_logger("bastion.ledger")

#: Key of the writer in ``Gateway.services`` (the admin API and tests reach it there).
SERVICE = "ledger"


def journal_dir(gateway: Gateway) -> Path:
    settings = gateway.settings
    return Path(settings.ledger.journal_dir or Path(settings.data_dir) / "journal").resolve()


class LedgerStage(Stage):
    name = "ledger"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings.ledger
        self.writer: LedgerWriter | None = None

    async def start(self) -> None:
        if not self.settings.enabled:
            return
        self.writer = LedgerWriter(self.settings, self.gateway.db, journal_dir(self.gateway))
        await self.writer.start()
        self.gateway.services[SERVICE] = self.writer

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
            self.gateway.services.pop(SERVICE, None)
            self.writer = None

    async def on_complete(self, ctx: RequestContext) -> None:
        writer = self.writer
        if writer is None:
            return
        try:
            record = build_record(ctx, content_mode(ctx.principal, self.settings.default_mode))
        except Exception:  # a malformed context must not cost the client its answer
            log.exception("ledger_record_failed", request_id=ctx.request_id)
            return
        writer.submit(record)
