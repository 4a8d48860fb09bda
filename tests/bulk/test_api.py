"""The bulk endpoint on agent sessions end to end: submit (202), the run in the background, the
status with per-operation aggregates and each item's result; what goes upstream and what the
ledger records; the refusals (400, 404, 410, 429); and what a bulk leaves out (history, the
session's message limits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from bastion.jobs.model import ItemOutcome as StoredItem
from bastion.jobs.runner import WorkerPool
from bastion.store.models import ApiKey, Interaction
from tests.bulk.support import CLAUDE, CLAUDE_UPSTREAM, GPT_UPSTREAM, SECRET, BulkEnv, items
from tests.support.fake_upstream import answer_text
from tests.support.harness import wait_until


async def stop_workers(env: BulkEnv) -> WorkerPool:
    """No worker takes jobs from now on; the returned pool runs one when the test says so."""
    jobs = env.gateway.services.jobs
    pool = jobs.pool
    assert pool is not None
    await pool.stop()
    jobs.pool = None
    return pool


#: A good item (named "0" by its index when it is first).
ITEM = {"operation": "x", "message": "m"}


async def _rows(env: BulkEnv, count: int) -> list[Interaction] | None:
    async with env.db.session() as session:
        rows = list(await session.scalars(select(Interaction).order_by(Interaction.created_at)))
    return rows if len(rows) == count else None


async def test_a_bulk_runs_grouped_and_reports_aggregated_results(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start()
    sent = items(5, ("summarize", "classify"))
    submitted = await env.submit(agent_id, sent)
    assert submitted.status_code == 202, submitted.text
    accepted = submitted.json()
    assert accepted["object"] == "bulk_batch" and accepted["id"].startswith("bulk_")
    assert accepted["agent_id"] == agent_id and accepted["status"] in ("queued", "running", "succeeded")
    assert accepted["counts"]["items"] == 5
    assert submitted.headers["location"] == f"/api/v1/ai/batch/{accepted['id']}/status"

    done = await env.finished(accepted["id"])
    assert done["status"] == "succeeded"
    assert done["counts"] == {"items": 5, "succeeded": 5, "failed": 0, "pending": 0}
    assert set(done["operations"]) == {"summarize", "classify"}
    assert (done["operations"]["summarize"]["items"], done["operations"]["classify"]["items"]) == (3, 2)
    assert [r["id"] for r in done["results"]] == [item["id"] for item in sent]  # submission order
    reply = answer_text(CLAUDE_UPSTREAM)
    for result, item in zip(done["results"], sent, strict=True):
        assert result["status"] == "succeeded" and result["operation"] == item["operation"]
        assert result["answer"] == reply and result["interaction_id"].startswith("req_")
        assert result["usage"]["input_tokens"] > 0
    total = sum(op["cost_usd"] for op in done["operations"].values())
    assert done["cost_usd"] == pytest.approx(total) and done["cost_usd"] > 0
    assert SECRET not in submitted.text and SECRET not in str(done)

    # Upstream: one system prompt for the whole run (one canary), marked as a cache breakpoint.
    requests = env.fake.requests(CLAUDE_UPSTREAM)
    assert len(requests) == 5
    systems = [request.body["system"] for request in requests]
    assert all(system == systems[0] for system in systems)
    (block,) = systems[0]
    assert SECRET in block["text"] and block["cache_control"] == {"type": "ephemeral"}
    assert sorted(r.body["messages"][0]["content"] for r in requests) == sorted(i["message"] for i in sent)
    # The first item ran alone and wrote the cache; every other one read it.
    usages = [r["usage"] for r in done["results"]]
    assert sum(u["cache_creation_input_tokens"] > 0 for u in usages) == 1
    assert sum(u["cache_read_input_tokens"] > 0 for u in usages) == 4

    # The ledger: the session, the prompt version, the bulk's ids, the item's message only.
    rows = await wait_until(lambda: _rows(env, 5), what="five ledger rows")
    by_id = {result["interaction_id"]: result for result in done["results"]}
    for row in rows:
        result = by_id[row.id]
        assert (row.session_id, row.prompt_id, row.prompt_version, row.model) == (
            agent_id,
            "bulk-claude-prompt",
            1,
            CLAUDE,
        )
        assert row.extra is not None and row.extra["bulk_id"] == accepted["id"]
        assert (row.extra["bulk_item"], row.extra["operation"]) == (result["id"], result["operation"])
        assert SECRET not in str(row.request_messages)
        assert row.cost_usd == pytest.approx(result["cost_usd"])
    # Items are not part of the conversation.
    history = await env.client.get(f"/api/v1/ai/sessions/{agent_id}/history", headers=env.auth("ann"))
    assert history.json()["data"] == []


async def test_an_openai_model_gets_the_same_prefix_unmarked(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start(prompt_id="bulk-gpt-prompt")
    done = await env.finished(await env.submit_ok(agent_id, items(3)))
    assert done["counts"]["succeeded"] == 3
    requests = env.fake.requests(GPT_UPSTREAM)
    systems = [request.body["messages"][0] for request in requests]
    assert all(system == systems[0] for system in systems) and isinstance(systems[0]["content"], str)
    assert "cache_control" not in str(requests[0].body)
    # OpenAI's automatic cache, reported as cached_tokens, shows as cache reads.
    assert done["usage"]["cache_read_input_tokens"] > 0 and done["usage"]["cache_creation_input_tokens"] == 0


async def test_item_failures_are_results_and_the_rest_succeed(bulk_env: BulkEnv) -> None:
    env = bulk_env
    env.fake.script(CLAUDE_UPSTREAM, ["prompt_cache", "400"])
    agent_id = await env.start()
    done = await env.finished(await env.submit_ok(agent_id, items(4, ("a", "b"))))
    assert done["status"] == "succeeded"
    assert (done["counts"]["succeeded"], done["counts"]["failed"]) == (3, 1)
    (failed,) = [r for r in done["results"] if r["status"] == "failed"]
    assert failed["status_code"] == 400 and failed["error"]["message"]
    assert done["operations"][failed["operation"]]["failed"] == 1
    assert done["results"][0]["status"] == "succeeded"  # the first item runs alone, first


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"agent_id": None, "items": []}, "agent_id"),
        ({"items": [{"operation": "x", "message": "m"}]}, "agent_id"),
        ("not an object", None),
        ({"agent_id": "A", "items": [{"operation": "x", "message": "m"}], "extra": 1}, "extra"),
        ({"agent_id": "A", "items": "nope"}, "items"),
        ({"agent_id": "A", "items": [{"message": "m"}]}, "items"),
        ({"agent_id": "A", "items": [{"operation": "has space", "message": "m"}]}, "items"),
        ({"agent_id": "A", "items": [{"operation": "x", "message": "  "}]}, "items"),
        ({"agent_id": "A", "items": [{"operation": "x", "message": 3}]}, "items"),
        ({"agent_id": "A", "items": [{"id": "a", "operation": "x", "message": "m"}] * 2}, "items"),
        ({"agent_id": "A", "items": [ITEM, {"id": "0", "operation": "x", "message": "m"}]}, "items"),
        ({"agent_id": "A", "items": [{"operation": "x", "message": "m", "model": "gpt"}]}, "items"),
        ({"agent_id": "A", "items": [{"operation": "x", "message": "m"}] * 6}, "items"),
        ({"agent_id": "A", "items": ["m"]}, "items"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("bulk_overrides", [{"max_items": 5}])
async def test_bad_input_is_a_clear_400(bulk_env: BulkEnv, body: Any, param: str | None) -> None:
    env = bulk_env
    agent_id = await env.start()
    if isinstance(body, dict) and body.get("agent_id") == "A":
        body = {**body, "agent_id": agent_id}
    answer = await env.client.post("/api/v1/ai/batch", json=body, headers=env.auth("ann"))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["message"].startswith("Invalid request")
    assert await env.gateway.services.jobs.store.counts() == {}  # nothing was submitted


async def test_a_message_too_large_for_the_window_is_a_400(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start()
    answer = await env.submit(
        agent_id, [{"operation": "x", "message": "ok"}, {"operation": "x", "message": "w " * 5000}]
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "items[1].message"


async def test_sessions_and_bulks_are_their_owners_only(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start("ann")
    for who in ("bob", "carl", "svc"):
        answer = await env.submit(agent_id, items(1), who)
        assert answer.status_code == 404, (who, answer.text)
    assert (await env.submit("not-a-uuid", items(1))).status_code == 404
    bulk_id = await env.submit_ok(agent_id, items(2))
    await env.finished(bulk_id)
    assert (await env.status(bulk_id, "ann2")).status_code == 200  # the owner's other key
    for who in ("bob", "carl", "svc"):
        answer = await env.status(bulk_id, who)
        assert answer.status_code == 404 and answer.json()["error"]["param"] == "batch_id"
    assert (await env.status("bulk_" + "0" * 32)).status_code == 404
    assert (await env.status("job_123")).status_code == 404
    assert (await env.submit(agent_id, items(1), "viewer")).status_code == 403


async def test_an_ended_or_expired_session_answers_410(bulk_env: BulkEnv) -> None:
    env = bulk_env
    ended = await env.start()
    await env.client.post("/api/v1/ai/sessions/end", json={"agent_id": ended}, headers=env.auth("ann"))
    answer = await env.submit(ended, items(1))
    assert answer.status_code == 410 and answer.json()["error"]["code"] == "session_ended"
    idle = await env.start()
    env.clock.advance(31 * 60)
    answer = await env.submit(idle, items(1))
    assert answer.status_code == 410 and answer.json()["error"]["code"] == "session_expired"


async def test_a_bulk_whose_session_ended_before_it_ran_fails_its_items(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start()
    pool = await stop_workers(env)
    bulk_id = await env.submit_ok(agent_id, items(2))
    await env.client.post("/api/v1/ai/sessions/end", json={"agent_id": agent_id}, headers=env.auth("ann"))
    assert await pool.execute(bulk_id) == "succeeded"
    done = await env.finished(bulk_id)
    assert done["counts"]["failed"] == 2
    assert {r["error"]["code"] for r in done["results"]} == {"session_ended"}
    assert {r["status_code"] for r in done["results"]} == {410}
    assert {r["interaction_id"] for r in done["results"]} == {None}  # nothing reached the pipeline
    assert env.fake.requests(CLAUDE_UPSTREAM) == []


async def test_five_bulk_submissions_a_minute_per_owner(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start("ann")
    assert (await env.submit(agent_id, [])).status_code == 400  # refused input takes no place
    for _ in range(5):
        await env.submit_ok(agent_id, items(1))
    refused = await env.submit(agent_id, items(1), "ann2")  # the owner, whichever key
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "5 bulk submissions per minute" in refused.json()["error"]["message"]
    other = await env.start("bob")
    assert (await env.submit(other, items(1), "bob")).status_code == 202  # another owner's own limit


@pytest.mark.parametrize("bulk_overrides", [{"per_minute": None}])
async def test_items_take_no_place_in_the_session_message_limits(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start()
    done = await env.finished(await env.submit_ok(agent_id, items(25)))  # agent_rpm is 10
    assert done["counts"]["succeeded"] == 25
    chat = await env.client.post(
        "/api/v1/ai/chat", json={"agent_id": agent_id, "message": "hi"}, headers=env.auth("ann")
    )
    assert chat.status_code == 200, chat.text
    for _ in range(6):
        await env.submit_ok(agent_id, items(1))  # unlimited submissions


async def test_the_status_of_a_queued_bulk_counts_pending_items(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start()
    await stop_workers(env)
    sent = [
        {"operation": "a", "message": "x"},
        {"id": None, "operation": "b", "message": "y"},
        {"id": "z", "operation": "a", "message": "w"},
    ]
    bulk_id = await env.submit_ok(agent_id, sent)
    answer = (await env.status(bulk_id)).json()
    assert answer["status"] == "queued"
    assert answer["counts"] == {"items": 3, "succeeded": 0, "failed": 0, "pending": 3}
    assert answer["operations"]["a"]["pending"] == 2
    assert [(r["id"], r["status"]) for r in answer["results"]] == [("0", "pending"), ("1", "pending"), ("z", "pending")]


async def test_a_rerun_after_a_crash_runs_only_the_items_not_stored(bulk_env: BulkEnv) -> None:
    """An attempt that died after storing two outcomes: the next one runs the other three only."""
    env = bulk_env
    agent_id = await env.start()
    pool = await stop_workers(env)
    bulk_id = await env.submit_ok(agent_id, items(5, ("a", "b")))
    stored = {"operation": "a", "status_code": 200, "interaction_id": "req_earlier", "answer": "earlier"}
    await env.gateway.services.jobs.store.write_items(
        bulk_id, [StoredItem("it-0", {**stored, "usage": {}, "cost_usd": 0.0}), StoredItem("it-2", stored)]
    )
    assert await pool.execute(bulk_id) == "succeeded"
    done = await env.finished(bulk_id)
    assert done["counts"] == {"items": 5, "succeeded": 5, "failed": 0, "pending": 0}
    sent = sorted(r.body["messages"][0]["content"] for r in env.fake.requests(CLAUDE_UPSTREAM))
    assert sent == ["Item 1.", "Item 3.", "Item 4."]
    assert [r["answer"] for r in done["results"]][0::2] == ["earlier", "earlier", answer_text(CLAUDE_UPSTREAM)]


async def test_a_cancelled_bulk_keeps_what_finished(bulk_env: BulkEnv) -> None:
    env = bulk_env
    env.fake.default(CLAUDE_UPSTREAM, "ok:0.1")
    agent_id = await env.start()
    bulk_id = await env.submit_ok(agent_id, items(40))
    await wait_until(lambda: len(env.fake.requests(CLAUDE_UPSTREAM)) >= 3, what="items started")
    await env.gateway.services.jobs.cancel(bulk_id)
    done = await env.finished(bulk_id)
    assert done["status"] == "cancelled"
    counts = done["counts"]
    assert counts["succeeded"] >= 1 and counts["pending"] > 0
    assert counts["succeeded"] + counts["pending"] == 40
    assert len(env.fake.requests(CLAUDE_UPSTREAM)) < 40


async def test_a_key_revoked_before_the_run_stops_it(bulk_env: BulkEnv) -> None:
    env = bulk_env
    agent_id = await env.start("svc")  # a key without a user owns its sessions
    pool = await stop_workers(env)
    bulk_id = await env.submit_ok(agent_id, items(2), "svc")
    async with env.db.transaction() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.name == "svc").values(revoked_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    assert await pool.execute(bulk_id) == "succeeded"
    job_items = await env.gateway.services.jobs.items(bulk_id)
    assert [(item.status, item.error["status_code"]) for item in job_items] == [("failed", 401)] * 2
    assert env.fake.requests(CLAUDE_UPSTREAM) == []
