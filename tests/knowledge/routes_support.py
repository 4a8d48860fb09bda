"""The knowledge API suite's gateway: in process, auth on, the keys of tests/sessions/support.py
(``acme``: ann and bob (developers), svc (service), viewer; ``globex``: carl) plus an ``admin`` of
acme, and the suite's fake embedder in place of the local model (padded to its 384 dimensions).

    async def test_x(kenv: KnowledgeEnv) -> None:
        created = await kenv.post("ann", "/v1/knowledge/collections", {"name": "kb"})
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.principal import Role
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.auth.support import seed_key
from tests.knowledge.conftest import DIMENSIONS, FakeEmbedder
from tests.sessions.support import seed_keys
from tests.support.harness import make_settings, running_gateway, wait_until

MINILM_DIMENSIONS = 384
#: Small limits, so the suite reaches them with small bodies.
MAX_DOCUMENT_BYTES = 64 * 1024
SYNC_BYTES = 4096
SYNC_DOCUMENTS = 4
COLLECTIONS = "/v1/knowledge/collections"


class PaddedEmbedder:
    """The suite's bag-of-words embedder at the local model's width (zeros after its own)."""

    def __init__(self, inner: FakeEmbedder) -> None:
        self.inner = inner

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        padding = [0.0] * (MINILM_DIMENSIONS - DIMENSIONS)
        return [vector + padding for vector in await self.inner(texts)]


@dataclass
class KnowledgeEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    embedder: FakeEmbedder
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(who), **kwargs)

    async def post(self, who: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return await self.client.post(path, headers=self.auth(who), **kwargs)

    async def delete(self, who: str, path: str) -> httpx.Response:
        return await self.client.delete(path, headers=self.auth(who))

    async def collection(self, who: str, name: str, **fields: Any) -> dict[str, Any]:
        response = await self.post(who, COLLECTIONS, {"name": name, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def upload(
        self, who: str, collection: str, name: str, content: bytes, content_type: str | None = None, **fields: str
    ) -> httpx.Response:
        part = (name, content, content_type) if content_type else (name, content)
        return await self.client.post(
            f"{COLLECTIONS}/{collection}/documents", headers=self.auth(who), data=fields, files={"file": part}
        )

    async def finished_job(self, who: str, job_id: str) -> dict[str, Any]:
        async def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.get(who, f"/v1/knowledge/jobs/{job_id}")).json()
            return body if body["state"] in ("succeeded", "failed", "cancelled") else None

        return await wait_until(finished, timeout_s=30, what=f"ingestion job {job_id}")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["message"]
    return error


@contextlib.asynccontextmanager
async def knowledge_gateway(
    database: Database, database_url: str, tmp_path: Path, fake_embedder: FakeEmbedder, **overrides: Any
) -> AsyncIterator[KnowledgeEnv]:
    """The gateway of the suite; ``overrides`` are settings sections (``jobs={...}``)."""
    knowledge = {
        "max_document_bytes": MAX_DOCUMENT_BYTES,
        "sync_ingest_bytes": SYNC_BYTES,
        "sync_ingest_documents": SYNC_DOCUMENTS,
    }
    settings = make_settings(database_url, tmp_path / "data", knowledge=knowledge, **overrides)
    keys = await seed_keys(database)
    keys["admin"], _ = await seed_key(database, "acme", Role.ADMIN)

    def install_fake_embedder(gateway: Gateway) -> None:
        assert gateway.services.knowledge is not None
        gateway.services.knowledge.embed = PaddedEmbedder(fake_embedder)

    async with running_gateway(settings, before_start=install_fake_embedder, timeout_s=30) as running:
        yield KnowledgeEnv(running.gateway, running.client, database, fake_embedder, keys)


@pytest.fixture
async def kenv(
    database: Database, database_url: str, tmp_path: Path, fake_embedder: FakeEmbedder
) -> AsyncIterator[KnowledgeEnv]:
    async with knowledge_gateway(database, database_url, tmp_path, fake_embedder) as env:
        yield env
