"""The response-cache suite's gateway: the real default pipeline in process (auth, ledger, prompt,
guard, cache) over a per-test SQLite database, in front of the guard suite's scriptable fake
upstream. Two models: ``MODEL`` (exact cache, the default) and ``SEMANTIC`` (semantic cache on),
whose embedder is a deterministic fake unless a test brings the real one."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from bastion.cache.polarity import _POLARITY
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.guard_stages.support import MODEL, UPSTREAM, Caller, GuardEnv, GuardFake
from tests.support.harness import make_settings, running_gateway

__all__ = ["MODEL", "SEMANTIC", "SEMANTIC_UPSTREAM", "UPSTREAM", "CacheEnv", "Caller", "fake_embed", "metric"]

SEMANTIC = "cache-semantic"
SEMANTIC_UPSTREAM = "semantic-upstream"
REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")
DIMENSIONS = 384


async def fake_embed(texts: list[str]) -> tuple[list[list[float]], int]:
    """Bag-of-words vectors that ignore polarity words, negations, punctuation and case: "turn on dark mode"
    and "turn off dark mode" are identical to it (cosine 1.0), so only the polarity check can
    keep them apart."""
    vectors = []
    tokens = 0
    for text in texts:
        vector = np.zeros(DIMENSIONS, dtype=np.float32)
        words = re.findall(r"[a-z0-9']+", text.lower())
        tokens += len(words)
        for word in words:
            if word in _POLARITY or word in ("not", "no", "never") or word.endswith("n't"):
                continue
            vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % DIMENSIONS] += 1.0
        norm = float(np.linalg.norm(vector)) or 1.0
        vectors.append((vector / norm).tolist())
    return vectors, tokens


def fake_embedder(gateway: Gateway) -> None:
    """Give the gateway's semantic cache ``fake_embed`` (before it starts: MiniLM is never loaded)."""
    cache = gateway.services.cache
    if cache is not None and cache.index is not None:
        cache.index.embed = fake_embed
        cache._embed = fake_embed


def cache_settings(database_url: str, data_dir: Path, fake: GuardFake, **overrides: Any) -> Any:
    def deployment(upstream: str) -> dict[str, Any]:
        return {"provider": "openai", "model": upstream, "api_base": fake.openai_base, "api_key": "test-key"}

    base: dict[str, Any] = {
        "models": [
            {"name": MODEL, "aliases": ["cache-alias"], "deployments": [deployment(UPSTREAM)]},
            {"name": SEMANTIC, "deployments": [deployment(SEMANTIC_UPSTREAM)], "cache": {"semantic": True}},
        ],
        "router": {"retries": 0},
        "ledger": {"enabled": True, "flush_interval_s": 0.05},
        "sessions": {"agent_rpm": None, "user_messages_per_hour": None},
    }
    base.update(overrides)
    return make_settings(database_url, data_dir, **base)


class CacheEnv(GuardEnv):
    async def metrics(self, caller: Caller) -> str:
        response = await self.client.get("/metrics", headers=caller.headers(admin=True))
        assert response.status_code == 200, response.text
        return response.text

    async def stream_texts(self, caller: Caller, path: str, body: dict[str, Any]) -> tuple[Any, str, list[Any]]:
        """A streamed request's response, the text it carried (either dialect) and its events."""
        response, events = await self.stream(caller, path, body)
        parts: list[str] = []
        for event in events:
            if event.get("type") == "content_block_delta":
                parts.append(event["delta"].get("text") or "")
            for choice in event.get("choices") or ():
                parts.append((choice.get("delta") or {}).get("content") or "")
        return response, "".join(parts), events


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the /metrics text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def cache_overrides() -> dict[str, Any]:
    """Override in a test module to change the gateway's settings."""
    return {}


@pytest.fixture
async def cache_env(
    database: Database, database_url: str, tmp_path: Path, guard_fake: GuardFake, cache_overrides: dict[str, Any]
) -> AsyncIterator[CacheEnv]:
    settings = cache_settings(database_url, tmp_path / "data", guard_fake, **cache_overrides)
    async with running_gateway(settings, before_start=fake_embedder) as env:
        yield CacheEnv(env.gateway, env.client, database)


def json_body(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(response.content)
    return body
