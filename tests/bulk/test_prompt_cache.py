"""The worked example through the bulk endpoint, against the fake Anthropic upstream that caches
prefixes as Anthropic does (tokens are words): 100 items on one agent session whose vault prompt
is a 10,000-token system prefix (canary included), each item 500 unique tokens, at $3/MTok input.

With the 5-minute cache the run costs $0.4845: the first item writes the prefix at 1.25x
($0.039 with its 500 tokens), the other 99 read it at 0.1x ($0.0045 each). Without the cache
(``bulk.prompt_caching: false``) the same run costs $3.15. The bulk's status, the ledger's rows
and what went upstream must all say so.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bastion.store.models import Interaction
from tests.bulk.support import CLAUDE, CLAUDE_UPSTREAM, BulkEnv, prefix_of
from tests.support.harness import wait_until

PREFIX_TOKENS = 10_000
UNIQUE_TOKENS = 500
ITEMS = 100


def _items() -> list[dict[str, Any]]:
    """100 items of 500 unique tokens each, in two operations."""
    operations = ("summarize", "classify")
    return [
        {"id": f"doc-{i}", "operation": operations[i % 2], "message": f"u{i} " * UNIQUE_TOKENS} for i in range(ITEMS)
    ]


async def _run(env: BulkEnv) -> tuple[dict[str, Any], list[Interaction]]:
    await env.add_prompt("long-prompt", prefix_of(PREFIX_TOKENS), CLAUDE)
    agent_id = await env.start(prompt_id="long-prompt")
    done = await env.finished(await env.submit_ok(agent_id, _items()))
    assert done["counts"] == {"items": ITEMS, "succeeded": ITEMS, "failed": 0, "pending": 0}

    async def rows() -> list[Interaction] | None:
        async with env.db.session() as session:
            found = list(await session.scalars(select(Interaction).where(Interaction.session_id == agent_id)))
        return found if len(found) == ITEMS else None

    return done, await wait_until(rows, what="100 ledger rows")


async def test_the_worked_example_through_the_bulk_endpoint(bulk_env: BulkEnv) -> None:
    env = bulk_env
    done, rows = await _run(env)

    # What went upstream: the same 10,000-token system block on every item, marked for the cache.
    sent = env.fake.requests(CLAUDE_UPSTREAM)
    assert len(sent) == ITEMS
    (system,) = sent[0].body["system"]
    assert system["cache_control"] == {"type": "ephemeral"} and len(system["text"].split()) == PREFIX_TOKENS
    assert all(request.body["system"] == [system] for request in sent)

    # The ledger: one cache write of the prefix, 99 reads, every prompt 10,500 tokens.
    assert all(row.prompt_tokens == PREFIX_TOKENS + UNIQUE_TOKENS for row in rows)
    writes = [row for row in rows if row.cache_creation_input_tokens]
    reads = [row for row in rows if row.cached_tokens]
    assert len(writes) == 1 and len(reads) == ITEMS - 1
    (first,) = writes
    assert (first.cache_creation_input_tokens, first.cached_tokens, first.cache_creation_1h_input_tokens) == (
        PREFIX_TOKENS,
        0,
        0,
    )
    assert round(first.cost_usd, 9) == 0.039  # 10,000 x $3.75 + 500 x $3, per million
    assert all((r.cached_tokens, r.cache_creation_input_tokens) == (PREFIX_TOKENS, 0) for r in reads)
    assert all(round(r.cost_usd, 9) == 0.0045 for r in reads)  # 10,000 x $0.30 + 500 x $3, per million
    assert round(sum(row.cost_usd for row in rows), 9) == 0.4845
    # The same tokens at the plain input price: the uncached figure of the worked example.
    assert round(sum(row.prompt_tokens for row in rows) * 3.0 / 1e6, 9) == 3.15

    # The status aggregates the same figures, per operation and in all.
    assert done["usage"]["input_tokens"] == ITEMS * (PREFIX_TOKENS + UNIQUE_TOKENS)
    assert done["usage"]["cache_creation_input_tokens"] == PREFIX_TOKENS
    assert done["usage"]["cache_read_input_tokens"] == (ITEMS - 1) * PREFIX_TOKENS
    assert round(done["cost_usd"], 9) == 0.4845
    operations = done["operations"]
    assert {name: op["items"] for name, op in operations.items()} == {"summarize": 50, "classify": 50}
    assert round(operations["summarize"]["cost_usd"] + operations["classify"]["cost_usd"], 9) == 0.4845
    # The run's first item (the first "summarize" one) wrote the cache before any other item ran.
    assert done["results"][0]["usage"]["cache_creation_input_tokens"] == PREFIX_TOKENS
    assert first.id == done["results"][0]["interaction_id"]
    assert operations["summarize"]["cache_creation_input_tokens"] == PREFIX_TOKENS
    assert operations["classify"]["cache_read_input_tokens"] == 50 * PREFIX_TOKENS


@pytest.mark.parametrize("bulk_overrides", [{"prompt_caching": False}])
async def test_without_the_cache_the_same_run_costs_3_15(bulk_env: BulkEnv) -> None:
    env = bulk_env
    done, rows = await _run(env)
    assert all("cache_control" not in str(request.body) for request in env.fake.requests(CLAUDE_UPSTREAM))
    assert all((row.cached_tokens, row.cache_creation_input_tokens) == (0, 0) for row in rows)
    assert round(sum(row.cost_usd for row in rows), 9) == 3.15
    assert round(done["cost_usd"], 9) == 3.15
    assert done["usage"]["cache_read_input_tokens"] == 0
