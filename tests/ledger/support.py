"""Builders shared by the ledger tests: journal records, request contexts, writers, row counts."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bastion.auth.principal import Principal, Role
from bastion.config.settings import LedgerSettings
from bastion.gateway.context import RequestContext, Timing
from bastion.ledger.writer import LedgerWriter
from bastion.providers.base import Usage
from bastion.store.db import Database
from bastion.store.models import Interaction


def make_record(i: int, **overrides: Any) -> dict[str, Any]:
    """A journal record as the ledger stage's ``build_record`` makes it (request id ``req_<i>``)."""
    record: dict[str, Any] = {
        "v": 1,
        "id": f"req_{i:024d}",
        "ts": time.time(),
        "tenant_id": "t" * 32,
        "user_id": None,
        "key_id": "k" * 32,
        "endpoint": "chat",
        "dialect": "openai",
        "model": "gpt-test",
        "deployment": "gpt-test-0",
        "upstream_model": "gpt-test-upstream",
        "stream": False,
        "status": 200,
        "error_code": None,
        "error_message": None,
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "cached_tokens": 2,
        "tokens_estimated": False,
        "cost_usd": 0.00125,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "overhead_ms": 0.4,
        "retries": 0,
        "finish_reason": "stop",
        "user_agent": "pytest",
        "content_mode": "full",
        "request_messages": [{"role": "user", "content": f"question {i}"}],
        "response_text": f"answer {i}",
        "prompt_id": None,
        "prompt_version": None,
        "session_id": None,
        "flagged": False,
        "guard": None,
        "extra": None,
    }
    record.update(overrides)
    return record


def make_context(
    *,
    principal: Principal | None = None,
    body: dict[str, Any] | None = None,
    endpoint: str = "chat",
    output: str = "Hello there.",
) -> RequestContext:
    ctx = RequestContext(
        request_id="req_" + "ab" * 12,
        dialect="openai",
        endpoint="embeddings" if endpoint == "embeddings" else "chat",
        body=body if body is not None else {"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        model="fast",
        timing=Timing(),
        user_agent="pytest-agent/1.0",
    )
    ctx.principal = principal
    ctx.usage = Usage(prompt_tokens=12, completion_tokens=3, cached_tokens=4)
    ctx.cost_usd = 0.0042
    ctx.trace.alias = "fast"
    ctx.trace.deployment = "fast-0"
    ctx.trace.upstream_model = "gpt-4o-mini"
    if output:
        ctx.output_text.append(output)
    ctx.finish_reason = "stop"
    return ctx


def principal(tenant_id: str = "a" * 32, *, mode: str | None = None, role: Role = Role.SERVICE) -> Principal:
    settings = {"ledger_mode": mode} if mode else {}
    return Principal(
        tenant_id=tenant_id, tenant_name="acme", role=role, key_id="b" * 32, user_id="c" * 32, tenant_settings=settings
    )


def writer(db: Database, journal_dir: Path, **settings: Any) -> LedgerWriter:
    """A writer with fast flushing (tests wait on ``flush``, not on timers)."""
    values: dict[str, Any] = {"flush_interval_s": 0.01, "retry_max_s": 0.05, "stop_timeout_s": 10.0}
    values.update(settings)
    return LedgerWriter(LedgerSettings(**values), db, journal_dir)


async def count_rows(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Interaction))).scalar_one())


async def stored_ids(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(select(Interaction.id))).scalars())


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Bounded polling for a condition, from async tests (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s{': ' + what if what else ''}")
        await asyncio.sleep(0.01)
