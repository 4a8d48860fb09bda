"""Prompt caching through the gateway, against a fake Anthropic upstream that caches prefixes as
Anthropic does (``tests/support/fake_cache.py``; its tokens are words):

* the worked example: 100 requests sharing a 10,000-token prefix with 500 unique tokens each, at
  $3/MTok input, cost $3.15 in the ledger without the cache and $0.4845 with the 5-minute cache
  (the first writes the prefix at 1.25x, the other 99 read it at 0.1x, all pay their 500 tokens
  at 1x), whether the requests come through the Anthropic SDK (plain or streamed, where usage
  arrives in message_start and message_delta) or the OpenAI SDK (cache_control on content parts);
* the ledger's cache columns; the 1-hour TTL at 2x; an OpenAI upstream's cached_tokens as reads;
* ``cache_control`` reaches the upstream from both dialects;
* a budget settles with the cache-aware cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import select

from bastion.auth.principal import Role
from bastion.gateway.service import Gateway
from bastion.providers.anthropic_common import anthropic_usage, openai_usage
from bastion.providers.base import Usage
from bastion.responses.output import usage_object
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.auth.support import seed_key
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import anthropic_sdk, make_settings, openai_sdk, running_gateway, wait_until

UPSTREAM = "claude-cache-test"
OPENAI_UPSTREAM = "gpt-cache-test"
PREFIX = "w " * 10_000  # 10,000 tokens
PRICING = {UPSTREAM: {"input_per_mtok": 3.0, "output_per_mtok": 0.0}}
BUDGET = 0.52


def unique(i: int) -> str:
    return f"u{i} " * 500  # 500 tokens


@dataclass
class CacheEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    fake: FakeUpstream
    keys: dict[str, str]
    app: Any

    def anthropic(self, who: str = "") -> anthropic.AsyncAnthropic:
        sdk: anthropic.AsyncAnthropic = anthropic_sdk(self.app, self.keys.get(who, "unused"))
        return sdk

    def openai(self, who: str = "") -> openai.AsyncOpenAI:
        sdk: openai.AsyncOpenAI = openai_sdk(self.client, self.keys.get(who, "unused"))
        return sdk

    async def rows(self, model: str) -> list[Interaction]:
        async with self.db.session() as session:
            found = await session.scalars(select(Interaction).where(Interaction.model == model))
            return sorted(found, key=lambda row: row.created_at)


def _models(fake: FakeUpstream) -> list[dict[str, Any]]:
    anthropic_deployment = {"provider": "anthropic", "model": UPSTREAM, "api_base": fake.base_url, "api_key": "k"}
    openai_deployment = {"provider": "openai", "model": OPENAI_UPSTREAM, "api_base": fake.openai_base, "api_key": "k"}
    return [
        {"name": "sonnet-plain", "deployments": [anthropic_deployment]},
        {"name": "sonnet-cached", "deployments": [anthropic_deployment]},
        {"name": "sonnet-hour", "deployments": [anthropic_deployment]},
        {"name": "gpt-cached", "deployments": [openai_deployment]},
    ]


@pytest.fixture
async def cache_env(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[CacheEnv]:
    fake.default(UPSTREAM, "prompt_cache")
    fake.default(OPENAI_UPSTREAM, "prompt_cache")
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=_models(fake),
        pricing={**PRICING, OPENAI_UPSTREAM: {"input_per_mtok": 2.0, "output_per_mtok": 8.0}},
        ledger={"enabled": True, "flush_interval_s": 0.01},
        auth={"enabled": False},
        router={"retries": 0},
    )
    async with running_gateway(settings, timeout_s=30) as running:
        yield CacheEnv(running.gateway, running.client, database, fake, {}, running.app)


async def _ask(env: CacheEnv, model: str, i: int, *, cached: bool, ttl: str | None = None) -> None:
    """Request ``i`` of a series, through a different client and mode in turn."""
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    system_block: dict[str, Any] = {"type": "text", "text": PREFIX, **({"cache_control": control} if cached else {})}
    question = unique(i)
    way = i % 4
    if way in (0, 1):  # Anthropic SDK: a complete answer, or a stream (usage in message_start/_delta)
        client = env.anthropic()
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": 16,
            "system": [system_block],
            "messages": [{"role": "user", "content": question}],
        }
        if way == 0:
            message = await client.messages.create(**kwargs)
            usage = message.usage
        else:
            async with client.messages.stream(**kwargs) as stream:
                usage = (await stream.get_final_message()).usage
        written, read = usage.cache_creation_input_tokens or 0, usage.cache_read_input_tokens or 0
        assert usage.input_tokens + written + read == 10_500
    else:  # OpenAI SDK: cache_control on a system content part (LiteLLM's convention)
        part: dict[str, Any] = {"type": "text", "text": PREFIX, **({"cache_control": control} if cached else {})}
        messages: Any = [{"role": "system", "content": [part]}, {"role": "user", "content": question}]
        if way == 2:
            completion = await env.openai().chat.completions.create(model=model, max_tokens=16, messages=messages)
            assert completion.usage is not None and completion.usage.prompt_tokens == 10_500
        else:
            chunks = await env.openai().chat.completions.create(
                model=model, max_tokens=16, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in chunks:
                if chunk.usage is not None:
                    assert chunk.usage.prompt_tokens == 10_500


async def test_the_worked_example_through_the_gateway(cache_env: CacheEnv) -> None:
    env = cache_env
    for i in range(100):
        await _ask(env, "sonnet-plain", i, cached=False)
    for i in range(100):
        await _ask(env, "sonnet-cached", i, cached=True)

    plain = await wait_until(lambda: _all(env, "sonnet-plain"), what="100 uncached rows in the ledger")
    cached = await wait_until(lambda: _all(env, "sonnet-cached"), what="100 cached rows in the ledger")
    assert round(sum(row.cost_usd for row in plain), 9) == 3.15
    assert round(sum(row.cost_usd for row in cached), 9) == 0.4845

    assert all((r.prompt_tokens, r.cached_tokens, r.cache_creation_input_tokens) == (10_500, 0, 0) for r in plain)
    first, *rest = cached
    assert (first.prompt_tokens, first.cache_creation_input_tokens, first.cached_tokens) == (10_500, 10_000, 0)
    assert first.cache_creation_1h_input_tokens == 0
    assert round(first.cost_usd, 9) == 0.039  # 10,000 x $3.75 + 500 x $3, per million
    for row in rest:
        assert (row.prompt_tokens, row.cache_creation_input_tokens, row.cached_tokens) == (10_500, 0, 10_000)
        assert round(row.cost_usd, 9) == 0.0045  # 10,000 x $0.30 + 500 x $3, per million
    assert {row.stream for row in cached} == {True, False} and {row.dialect for row in cached} == {
        "openai",
        "anthropic",
    }

    # What went upstream kept the client's cache_control, from either dialect.
    sent = env.fake.requests(UPSTREAM)[-4:]
    for request in sent:
        assert request.body["system"] == [{"type": "text", "text": PREFIX, "cache_control": {"type": "ephemeral"}}]


async def _all(env: CacheEnv, model: str, count: int = 100) -> list[Interaction] | None:
    rows = await env.rows(model)
    return rows if len(rows) == count else None


async def test_the_one_hour_ttl_costs_twice_the_input_price(cache_env: CacheEnv) -> None:
    env = cache_env
    for i in range(2):
        await _ask(env, "sonnet-hour", i, cached=True, ttl="1h")
    first, second = await wait_until(lambda: _all(env, "sonnet-hour", 2), what="the rows")
    assert (first.cache_creation_input_tokens, first.cache_creation_1h_input_tokens) == (10_000, 10_000)
    assert round(first.cost_usd, 9) == round((10_000 * 6.0 + 500 * 3.0) / 1e6, 9)
    assert second.cached_tokens == 10_000 and round(second.cost_usd, 9) == 0.0045
    (request, _) = env.fake.requests(UPSTREAM)
    assert request.body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


async def test_openai_cached_tokens_are_cache_reads(cache_env: CacheEnv) -> None:
    env = cache_env
    messages: Any = [{"role": "system", "content": PREFIX}, {"role": "user", "content": unique(0)}]
    for _ in range(2):
        answer = await env.openai().chat.completions.create(model="gpt-cached", messages=messages)
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 10_000
    first, second = await wait_until(lambda: _all(env, "gpt-cached", 2), what="the rows")
    completion = first.completion_tokens
    assert (first.cached_tokens, second.cached_tokens, second.cache_creation_input_tokens) == (0, 10_000, 0)
    # No cached price configured for this model: reads cost a tenth of its $2 input price.
    assert round(second.cost_usd, 9) == round((10_000 * 0.2 + 500 * 2.0 + completion * 8.0) / 1e6, 9)


async def test_a_budget_settles_with_the_cache_aware_cost(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    """Two keys with a $0.52 daily budget each: the cached series of 100 requests ($0.4845) fits
    (with room for the last request's pre-flight estimate, which prices the prompt as a cache
    write: it cannot know that the cache holds it), the uncached one ($0.0315 a request) is
    refused once it has spent about $0.52."""
    fake.default(UPSTREAM, "prompt_cache")
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=_models(fake),
        pricing=PRICING,
        budgets={"enabled": True, "daily_usd": {"key": BUDGET}},
        router={"retries": 0},
    )
    keys = {}
    keys["cached"], _ = await seed_key(database, "acme", Role.DEVELOPER)
    keys["plain"], _ = await seed_key(database, "acme", Role.DEVELOPER)
    async with running_gateway(settings, timeout_s=30) as running:
        env = CacheEnv(running.gateway, running.client, database, fake, keys, running.app)

        async def ask(who: str, i: int, cached: bool) -> anthropic.types.Message:
            block: dict[str, Any] = {"type": "text", "text": PREFIX}
            if cached:
                block["cache_control"] = {"type": "ephemeral"}
            return await env.anthropic(who).messages.create(
                model="sonnet-cached" if cached else "sonnet-plain",
                max_tokens=16,
                system=[block],  # type: ignore[list-item]
                messages=[{"role": "user", "content": unique(i)}],
            )

        for i in range(100):
            await ask("cached", i, cached=True)
        admitted = 0
        with pytest.raises(anthropic.APIStatusError) as refused:
            for i in range(100):
                await ask("plain", i, cached=False)
                admitted += 1
        assert refused.value.status_code == 402
        assert BUDGET - 0.0315 <= admitted * 0.0315 <= BUDGET + 0.0315  # within one request of the budget


async def test_cache_control_reaches_the_upstream_from_both_dialects(cache_env: CacheEnv) -> None:
    """Breakpoints on system blocks, message blocks and tools go upstream as the client set them."""
    env = cache_env
    mark, hour = {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}
    earlier: Any = {"role": "user", "content": [{"type": "text", "text": "Earlier.", "cache_control": mark}]}
    turns: Any = [earlier, {"role": "assistant", "content": "Noted."}, {"role": "user", "content": unique(1)}]
    system: Any = [{"type": "text", "text": PREFIX, "cache_control": hour}]
    tools: Any = [
        {
            "name": "lookup",
            "description": "Look it up.",
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": mark,
        }
    ]
    await env.anthropic().messages.create(
        model="sonnet-cached", max_tokens=16, system=system, tools=tools, messages=turns
    )
    openai_tools: Any = [
        {"type": "function", "function": {"name": "lookup", "description": "Look it up."}, "cache_control": mark}
    ]
    openai_messages: Any = [{"role": "system", "content": system}, *turns]
    await env.openai().chat.completions.create(
        model="sonnet-cached", max_tokens=16, tools=openai_tools, messages=openai_messages
    )
    from_anthropic, from_openai = env.fake.requests(UPSTREAM)
    for sent in (from_anthropic.body, from_openai.body):
        assert sent["system"] == [{"type": "text", "text": PREFIX, "cache_control": hour}]
        assert sent["tools"][0]["cache_control"] == mark
        assert sent["messages"][0]["content"] == [{"type": "text", "text": "Earlier.", "cache_control": mark}]
    # The second request read what the first wrote (same tools, system and first turn).
    assert from_openai.usage is not None and from_openai.usage["cache_read_input_tokens"] > 10_000


def test_cache_counts_survive_every_translation() -> None:
    """Anthropic usage -> the internal OpenAI shape -> Usage -> back to Anthropic, the Responses usage."""
    upstream = {
        "input_tokens": 500,
        "output_tokens": 7,
        "cache_read_input_tokens": 2_000,
        "cache_creation_input_tokens": 10_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 4_000, "ephemeral_1h_input_tokens": 6_000},
    }
    internal = openai_usage(upstream)
    assert (internal["prompt_tokens"], internal["prompt_tokens_details"]) == (12_500, {"cached_tokens": 2_000})
    usage = Usage.from_openai(internal)
    assert usage == Usage(
        prompt_tokens=12_500,
        completion_tokens=7,
        cached_tokens=2_000,
        cache_creation_tokens=10_000,
        cache_creation_1h_tokens=6_000,
    )
    assert anthropic_usage(usage.to_openai()) == upstream
    assert anthropic_usage(internal) == upstream
    details = usage_object(12_500, 7, usage.cached_tokens, usage.cache_creation_tokens)["input_tokens_details"]
    assert details == {"cached_tokens": 2_000, "cache_write_tokens": 10_000}


async def test_a_streamed_cache_write_is_recorded_from_either_dialect(cache_env: CacheEnv) -> None:
    """The write arrives in message_start's usage (and again in message_delta's)."""
    env = cache_env
    mark = {"type": "ephemeral", "ttl": "1h"}
    system: Any = [{"type": "text", "text": "a " * 2_000, "cache_control": mark}]
    async with env.anthropic().messages.stream(
        model="sonnet-hour", max_tokens=16, system=system, messages=[{"role": "user", "content": unique(1)}]
    ) as stream:
        final = await stream.get_final_message()
    assert (final.usage.cache_creation_input_tokens, final.usage.input_tokens) == (2_000, 500)
    parts: Any = [{"type": "text", "text": "b " * 3_000, "cache_control": mark}]
    chunks = await env.openai().chat.completions.create(
        model="sonnet-hour",
        max_tokens=16,
        messages=[{"role": "system", "content": parts}, {"role": "user", "content": unique(2)}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage: Any = [chunk.usage async for chunk in chunks if chunk.usage is not None][-1]
    assert usage.prompt_tokens == 3_500 and usage.model_extra["cache_creation_input_tokens"] == 3_000
    rows = await wait_until(lambda: _all(env, "sonnet-hour", 2), what="the rows")
    assert [(r.stream, r.cache_creation_input_tokens, r.cache_creation_1h_input_tokens) for r in rows] == [
        (True, 2_000, 2_000),
        (True, 3_000, 3_000),
    ]
    assert [round(r.cost_usd, 9) for r in rows] == [
        round((2_000 * 6.0 + 500 * 3.0) / 1e6, 9),
        round((3_000 * 6.0 + 500 * 3.0) / 1e6, 9),
    ]
