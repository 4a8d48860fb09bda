"""A gateway in process whose aliases differ from their upstreams' model names, on the session's
fake upstream, and helpers that read its answers (SSE events, Anthropic events by type)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from bastion.config.settings import Settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import RunningGateway, make_settings, running_gateway

#: alias -> (provider, upstream model name): the names differ so the ``model`` rule shows.
CHAT, CLAUDE = "fid-chat", "fid-claude"
CHAT_UPSTREAM, CLAUDE_UPSTREAM = "fid-chat-upstream-v2", "fid-claude-upstream-v2"
USER = [{"role": "user", "content": "Hi"}]
API_KEY = "sk-fidelity-deployment-key"


def fidelity_settings(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    """``tmp_path / "bastion.db"`` must be a migrated database (the ``db_path`` fixture)."""

    def deployment(provider: str, model: str, base: str, **extra: Any) -> dict[str, Any]:
        return {"provider": provider, "model": model, "id": model, "api_base": base, "api_key": API_KEY, **extra}

    models: list[dict[str, Any]] = [
        {"name": CHAT, "deployments": [deployment("openai", CHAT_UPSTREAM, fake.openai_base)]},
        {"name": CLAUDE, "deployments": [deployment("anthropic", CLAUDE_UPSTREAM, fake.base_url)]},
    ]
    base: dict[str, Any] = {
        "models": models,
        "router": {"retries": 0},
        "auth": {"enabled": False},
        "logging": {"level": "warning"},
    }
    base.update(overrides)
    return make_settings(f"sqlite:///{tmp_path / 'bastion.db'}", tmp_path / "data", **base)


@contextlib.asynccontextmanager
async def fidelity_gateway(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> AsyncIterator[RunningGateway]:
    async with running_gateway(fidelity_settings(tmp_path, fake, **overrides), timeout_s=30) as env:
        yield env


def openai_events(raw: bytes) -> list[Any]:
    """The JSON payloads of an OpenAI stream's ``data:`` events, then ``"[DONE]"`` if it came."""
    events: list[Any] = []
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                data = line[len(b"data: ") :]
                events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    """An Anthropic stream's event payloads, each validated as one of the SDK's stream events."""
    from anthropic.types import RawMessageStreamEvent

    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    events = []
    for block in raw.split(b"\n\n"):
        data = [line[len(b"data: ") :] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if data:
            payload = orjson.loads(data[0])
            if payload.get("type") not in ("ping", "error"):
                adapter.validate_python(payload)
            events.append(payload)
    return events
