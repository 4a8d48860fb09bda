"""How error messages name a key: by its listed prefix ("key bst_abc12345…"), which its owner
recognises, rather than its internal id. Looked up once per key per process, on the first refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from bastion.limits.policy import Scope
from bastion.store.models import ApiKey

if TYPE_CHECKING:
    from bastion.store.db import Database

log = structlog.get_logger("bastion.limits")


class ScopeLabels:
    def __init__(self, db: Database | None, max_entries: int = 10_000) -> None:
        self.db = db
        self.max_entries = max_entries
        self._keys: dict[str, str] = {}

    async def describe(self, scope: Scope) -> str:
        if scope.kind != "key" or not scope.label.endswith(scope.entity) or self.db is None:
            return scope.label  # already a prefix (or not a key)
        label = self._keys.get(scope.entity)
        if label is not None:
            return label
        try:
            async with self.db.session() as session:
                prefix = await session.scalar(select(ApiKey.prefix).where(ApiKey.id == scope.entity))
        except Exception:
            log.warning("key_label_lookup_failed", key_id=scope.entity, exc_info=True)
            return scope.label
        label = f"key {prefix}…" if prefix else scope.label
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        self._keys[scope.entity] = label
        return label
