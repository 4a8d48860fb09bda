"""The Files API suite's gateway: in process, auth on, two tenants (``acme``: ann (two keys), bob,
the service key svc, a viewer and an admin; ``globex``: carl), a movable clock on the file service.

    async def test_x(files_env: FilesEnv) -> None:
        client = files_env.openai("ann")       # the unmodified OpenAI SDK, over ASGI
        uploaded = await client.files.create(file=("in.jsonl", batch_jsonl(3)), purpose="batch")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from bastion.auth.principal import Role
from bastion.files.service import FileService
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.auth.support import seed_key
from tests.sessions.support import MovableClock, seed_keys
from tests.support.harness import make_settings, openai_sdk, running_gateway

#: The suite's upload limit (the product's default is 200 MB; tests/files/test_server.py has it).
MAX_BYTES = 8 * 1024 * 1024


def batch_line(custom_id: str, url: str = "/v1/chat/completions", **overrides: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say {custom_id}."}]}
    if url == "/v1/embeddings":
        body = {"model": "text-embedding-3-small", "input": custom_id}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body, **overrides}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def batch_jsonl(count: int, prefix: str = "req") -> bytes:
    return jsonl([batch_line(f"{prefix}-{i}") for i in range(count)])


@dataclass
class FilesEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    clock: MovableClock
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> FileService:
        return self.gateway.services.files

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    def openai(self, who: str = "ann") -> openai.AsyncOpenAI:
        sdk: openai.AsyncOpenAI = openai_sdk(self.client, self.keys[who])
        return sdk

    async def upload(self, who: str, content: bytes, purpose: str = "batch", name: str = "in.jsonl") -> httpx.Response:
        """A raw multipart upload (the SDK's own is ``openai(who).files.create``)."""
        return await self.client.post(
            "/v1/files", headers=self.auth(who), data={"purpose": purpose}, files={"file": (name, content)}
        )

    def stored_paths(self) -> list[Path]:
        """Every file under the storage directory, temporary uploads included."""
        return sorted(path for path in self.service.storage.directory.rglob("*") if path.is_file())


@pytest.fixture
async def files_env(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[FilesEnv]:
    settings = make_settings(database_url, tmp_path / "data", files={"max_bytes": MAX_BYTES})
    keys = await seed_keys(database)
    keys["admin"], _ = await seed_key(database, "acme", Role.ADMIN)
    clock = MovableClock()

    def use_clock(gateway: Gateway) -> None:
        gateway.services.files.clock = clock

    async with running_gateway(settings, before_start=use_clock, timeout_s=30) as running:
        yield FilesEnv(running.gateway, running.client, database, clock, keys)
