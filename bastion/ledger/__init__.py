"""The durable ledger: every interaction, journaled before the answer and stored in the background."""

from __future__ import annotations

from bastion.ledger.record import CONTENT_MODES, content_mode
from bastion.ledger.writer import LedgerWriter

__all__ = ["CONTENT_MODES", "LedgerWriter", "content_mode"]
