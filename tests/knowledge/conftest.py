"""Fixtures of the knowledge suite: per-test databases (SQLite and PostgreSQL), a tenant, a
deterministic fake embedder that counts what it embeds, and the service built on them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import numpy as np
import pytest

from bastion.config.work_settings import KnowledgeSettings
from bastion.knowledge.service import KnowledgeService
from bastion.store.db import Database
from bastion.store.models import Tenant
from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)

DIMENSIONS = 256


class FakeEmbedder:
    """Bag-of-words vectors: each word hashed to one dimension, summed, unit-normalised. Texts
    sharing words are similar, identical texts identical; ``texts`` counts every text embedded."""

    def __init__(self) -> None:
        self.texts = 0
        self.calls = 0

    def vector(self, text: str) -> list[float]:
        out = np.zeros(DIMENSIONS, dtype=np.float64)
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            out[int.from_bytes(digest[:4], "big") % DIMENSIONS] += 1.0
        norm = float(np.linalg.norm(out))
        if norm == 0:
            out[0] = 1.0
            norm = 1.0
        vector: list[float] = (out / norm).tolist()
        return vector

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts += len(texts)
        return [self.vector(text) for text in texts]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


async def add_tenant(db: Database, name: str) -> str:
    async with db.transaction() as session:
        tenant = Tenant(name=name)
        session.add(tenant)
    return tenant.id


@pytest.fixture
async def tenant(database: Database) -> str:
    return await add_tenant(database, "acme")


@pytest.fixture
async def service(database: Database, fake_embedder: FakeEmbedder) -> AsyncIterator[KnowledgeService]:
    yield KnowledgeService(database, KnowledgeSettings(), fake_embedder, model="fake", dimensions=DIMENSIONS)
