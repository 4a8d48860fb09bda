"""The batch suites' gateway: in process, auth on, the Files and Batch APIs, in-process workers,
deployments on the session's fake upstream (an OpenAI chat model, an embedding model, an
Anthropic model), and the unmodified SDKs over ASGI.

    async def test_x(batch_env: BatchEnv) -> None:
        client = batch_env.openai("ann")
        uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(3)), purpose="batch")
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        done = await batch_env.finished(batch.id)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anthropic
import httpx
import openai
import orjson
import pytest

from bastion.auth.principal import Role
from bastion.batches.model import FINAL, BatchApi, BatchView
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.auth.support import seed_key
from tests.sessions.support import seed_keys
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import anthropic_sdk, make_settings, openai_sdk, running_gateway, wait_until

CHAT: Final = "/v1/chat/completions"
EMBEDDINGS: Final = "/v1/embeddings"
CHAT_MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
CLAUDE = "claude-sonnet-4-5"
#: The upstream models the fake sees (scripts are keyed on these).
CHAT_UPSTREAM = "batch-chat"
EMBED_UPSTREAM = "batch-embed"
CLAUDE_UPSTREAM = "batch-claude"


def chat_line(custom_id: str, content: str | None = None, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {
            "model": CHAT_MODEL,
            "messages": [{"role": "user", "content": content or f"Say {custom_id}."}],
            **body,
        },
    }


def embed_line(custom_id: str, text: str = "hello") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": EMBEDDINGS, "body": {"model": EMBED_MODEL, "input": text}}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def chat_jsonl(count: int, prefix: str = "req") -> bytes:
    return jsonl([chat_line(f"{prefix}-{i}") for i in range(count)])


def read_jsonl(content: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in content.splitlines() if line.strip()]


def message_request(custom_id: str, text: str | None = None, **params: Any) -> Any:
    """A message batch request (typed loosely: the SDK's TypedDicts would refuse the bad ones)."""
    return {
        "custom_id": custom_id,
        "params": {
            "model": CLAUDE,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text or f"Say {custom_id}."}],
            **params,
        },
    }


def batch_settings_overrides(fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    def deployment(provider: str, model: str, base: str) -> dict[str, Any]:
        return {"provider": provider, "model": model, "api_base": base, "api_key": "test-key"}

    base: dict[str, Any] = {
        "models": [
            {"name": CHAT_MODEL, "deployments": [deployment("openai", CHAT_UPSTREAM, fake.openai_base)]},
            {
                "name": EMBED_MODEL,
                "kind": "embedding",
                "deployments": [deployment("openai", EMBED_UPSTREAM, fake.openai_base)],
            },
            {"name": CLAUDE, "deployments": [deployment("anthropic", CLAUDE_UPSTREAM, fake.base_url)]},
        ],
        "router": {"retries": 0},
        "ledger": {"enabled": True, "flush_interval_s": 0.05},
        "jobs": {"poll_interval_s": 0.05, "cancel_poll_s": 0.05, "heartbeat_interval_s": 0.5},
        "batches": {"status_poll_s": 0.02, "concurrency": 4},
    }
    base.update(overrides)
    return base


@dataclass
class BatchEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    fake: FakeUpstream
    app: Any
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    def openai(self, who: str = "ann") -> openai.AsyncOpenAI:
        sdk: openai.AsyncOpenAI = openai_sdk(self.client, self.keys[who])
        return sdk

    def anthropic(self, who: str = "ann") -> anthropic.AsyncAnthropic:
        sdk: anthropic.AsyncAnthropic = anthropic_sdk(self.app, self.keys[who])
        return sdk

    async def finished(self, batch_id: str, api: BatchApi = "openai", timeout_s: float = 30.0) -> BatchView:
        """Wait for the batch to reach a final status (through the service, as the API reads it)."""
        service = self.gateway.services.batches

        async def probe() -> BatchView | None:
            view = await service.store.load(batch_id)
            if view is None or view.status not in FINAL:
                return None
            return view

        return await wait_until(probe, timeout_s=timeout_s, what=f"batch {batch_id} ended")


@pytest.fixture
async def batch_env(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[BatchEnv]:
    settings = make_settings(database_url, tmp_path / "data", **batch_settings_overrides(fake))
    keys = await seed_keys(database)
    keys["admin"], _ = await seed_key(database, "acme", Role.ADMIN)
    async with running_gateway(settings, timeout_s=30) as running:
        yield BatchEnv(running.gateway, running.client, database, fake, running.app, keys)
