"""The semantic cache on the request path, with a fake embedder that cannot tell "enable" from
"disable" (so the polarity check alone must): opt-in per model, scoped to tenant, model, system
prompt and parameters, never answering the opposite request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.store.db import Database
from tests.cache.support import MODEL, SEMANTIC, SEMANTIC_UPSTREAM, UPSTREAM, CacheEnv, cache_settings, metric
from tests.guard_stages.support import GuardFake
from tests.support.harness import running_gateway


def ask(text: str, *, model: str = SEMANTIC, system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    return {"model": model, "messages": messages, "temperature": 0, **extra}


async def test_a_rephrased_request_is_a_semantic_hit(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    first = await cache_env.chat(caller, ask("How do I enable dark mode?"))
    assert first.headers["x-bastion-cache"] == "miss"
    again = await cache_env.chat(caller, ask("how do I enable dark mode"))
    assert again.status_code == 200
    assert again.headers["x-bastion-cache"] == "semantic-hit"
    assert float(again.headers["x-bastion-cache-similarity"]) >= 0.95
    assert again.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    assert guard_fake.attempts(SEMANTIC_UPSTREAM) == 1
    row = await cache_env.interaction(caller, again.headers["x-request-id"])
    assert row["extra"]["cache"] == "semantic-hit" and row["extra"]["cache_similarity"] >= 0.95
    assert row["cost_usd"] == 0


async def test_the_opposite_request_is_never_a_semantic_hit(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    before = await cache_env.metrics(caller)
    pairs = [
        ("Turn on dark mode", "Turn off dark mode"),
        ("Enable notifications for this app", "Disable notifications for this app"),
        ("Should I allow cookies here?", "Should I deny cookies here?"),
        ("Coffee with milk please", "Coffee without milk please"),
        ("Is the printer working?", "Is the printer not working?"),
    ]
    for first, opposite in pairs:
        assert (await cache_env.chat(caller, ask(first))).headers["x-bastion-cache"] == "miss"
        response = await cache_env.chat(caller, ask(opposite))
        assert response.headers["x-bastion-cache"] == "miss", opposite
    assert guard_fake.attempts(SEMANTIC_UPSTREAM) == 2 * len(pairs)
    rejections = metric(await cache_env.metrics(caller), "bastion_cache_semantic_rejections_total") - metric(
        before, "bastion_cache_semantic_rejections_total"
    )
    assert rejections >= len(pairs)  # the fake embedder put each pair at cosine 1.0


async def test_the_semantic_scope(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller, other_tenant = await cache_env.tenant(), await cache_env.tenant()
    assert (await cache_env.chat(caller, ask("What is a monad?", system="Be brief."))).headers[
        "x-bastion-cache"
    ] == "miss"
    misses = [
        (caller, ask("what is a monad", system="Be thorough.")),  # another system prompt
        (caller, ask("what is a monad", system="Be brief.", max_tokens=20)),  # another parameter
        (other_tenant, ask("what is a monad", system="Be brief.")),  # another tenant
    ]
    for who, body in misses:
        assert (await cache_env.chat(who, body)).headers["x-bastion-cache"] == "miss", body
    hit = await cache_env.chat(caller, ask("what is a monad", system="Be brief."))
    assert hit.headers["x-bastion-cache"] == "semantic-hit"


async def test_semantic_matching_is_opt_in_per_model_and_per_scope(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    assert (await cache_env.chat(caller, ask("How do I reset my password?", model=MODEL))).headers[
        "x-bastion-cache"
    ] == "miss"
    rephrased = await cache_env.chat(caller, ask("how do I reset my password", model=MODEL))
    assert rephrased.headers["x-bastion-cache"] == "miss"  # the exact-only model
    assert guard_fake.attempts(UPSTREAM) == 2

    exact_only = await cache_env.tenant(key={"cache": {"semantic": False}})
    assert (await cache_env.chat(exact_only, ask("How do I reset my password?"))).headers["x-bastion-cache"] == "miss"
    assert (await cache_env.chat(exact_only, ask("how do I reset my password"))).headers["x-bastion-cache"] == "miss"
    assert (await cache_env.chat(exact_only, ask("How do I reset my password?"))).headers["x-bastion-cache"] == "hit"


@pytest.mark.local_model("embedder")
async def test_the_embedded_model_end_to_end(
    database: Database, database_url: str, tmp_path: Path, guard_fake: GuardFake
) -> None:
    """The real MiniLM embedder (in its worker thread) behind the gateway: a rephrased question is a
    semantic hit, the opposite one is not."""
    settings = cache_settings(database_url, tmp_path / "data", guard_fake, ledger={"enabled": False})
    async with running_gateway(settings) as running:
        env = CacheEnv(running.gateway, running.client, database)
        caller = await env.tenant()
        assert (await env.chat(caller, ask("How do I turn on dark mode?"))).headers["x-bastion-cache"] == "miss"
        rephrased = await env.chat(caller, ask("How can I turn on dark mode?"))
        assert rephrased.headers["x-bastion-cache"] == "semantic-hit"
        assert float(rephrased.headers["x-bastion-cache-similarity"]) >= 0.95
        opposite = await env.chat(caller, ask("How can I turn off dark mode?"))
        assert opposite.headers["x-bastion-cache"] == "miss"
    assert guard_fake.attempts(SEMANTIC_UPSTREAM) == 2
