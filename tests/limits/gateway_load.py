"""Configuration and load for the end-to-end limits tests: gateways whose models point at the fake
upstream, and many concurrent requests spread over the gateways of a cluster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.models import Interaction

#: A model with no price (free), and one priced so that an answer of the fake upstream costs a
#: known amount: it always answers "Hello from lim-priced." = 3 completion tokens, at $10,000 per
#: million output tokens = $0.03, which is also the pre-flight estimate with max_tokens=3.
FREE_MODEL = "lim-ok"
PRICED_MODEL = "lim-priced"
PRICED_REQUEST_USD = 0.03
EMBED_MODEL = "lim-embed"
PRICED_BODY: dict[str, Any] = {
    "model": PRICED_MODEL,
    "max_tokens": 3,
    "messages": [{"role": "user", "content": "Say hello."}],
}
FREE_BODY: dict[str, Any] = {"model": FREE_MODEL, "messages": [{"role": "user", "content": "Say hello."}]}


def limits_config(fake_openai_base: str, *, redis_prefix: str, **sections: Any) -> dict[str, Any]:
    models = [
        {
            "name": name,
            "deployments": [
                {"provider": "openai", "model": name, "id": name, "api_base": fake_openai_base, "api_key": "test-key"}
            ],
        }
        for name in (FREE_MODEL, PRICED_MODEL)
    ]
    models.append(
        {
            "name": EMBED_MODEL,
            "kind": "embedding",
            "deployments": [
                {"provider": "openai", "model": EMBED_MODEL, "id": EMBED_MODEL, "api_base": fake_openai_base}
            ],
        }
    )
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 5},
        "models": models,
        "router": {"retries": 0},
        "local": {"enabled": False, "embeddings_enabled": False},
        "limits": {"redis_prefix": redis_prefix},
        "pricing": {PRICED_MODEL: {"input_per_mtok": 0.0, "output_per_mtok": 10_000.0}},
        "logging": {"level": "warning"},
    }
    for name, value in sections.items():
        config[name] = {**config.get(name, {}), **value}
    return config


@dataclass
class Reply:
    url: str
    status: int
    headers: dict[str, str]
    body: Any


async def fire(urls: list[str], api_key: str | None, count: int, body: dict[str, Any]) -> list[Reply]:
    """``count`` chat requests at once, round-robin over ``urls``; every reply, in order."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(index: int) -> Reply:
            url = urls[index % len(urls)]
            async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                return Reply(url, response.status, {k.lower(): v for k, v in response.headers.items()}, payload)

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def ledger_spend(database_url: str, key_id: str) -> tuple[int, float]:
    """(interactions, SUM(cost_usd)) the ledger holds for one key."""
    db = Database.from_settings(Settings(database_url=database_url))
    try:
        async with db.session() as session:
            row = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(Interaction.cost_usd), 0.0)).where(
                        Interaction.key_id == key_id
                    )
                )
            ).one()
            return int(row[0]), float(row[1])
    finally:
        await db.dispose()
