"""Two real ``bastion serve`` processes sharing PostgreSQL and Redis: any process serves any
session, and the active cap and the message limits hold across them."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.sessions.support import MODEL, PROMPT, SECRET, UPSTREAM
from tests.support.cluster import Cluster, ClusterFactory
from tests.support.fake_upstream import FakeUpstream, answer_text

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")
REPLY = answer_text(UPSTREAM)


@pytest.fixture
async def redis_prefix() -> Any:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    prefix = f"bastion-sess-{uuid.uuid4().hex[:8]}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def _config(fake: FakeUpstream, redis_prefix: str) -> dict[str, Any]:
    deployment = {"provider": "openai", "model": UPSTREAM, "api_base": fake.openai_base, "api_key": "test-key"}
    return {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 5},
        "models": [{"name": MODEL, "deployments": [deployment]}],
        "router": {"retries": 0},
        "local": {"enabled": False, "embeddings_enabled": False},
        "limits": {"enabled": False, "redis_prefix": redis_prefix},
        "budgets": {"enabled": False},
        "logging": {"level": "warning"},
    }


def _user_key(cluster: Cluster, email: str) -> str:
    made = cluster.cli("users", "create", "--tenant", "acme", "--email", email, "--role", "developer", "--json")
    assert made.returncode == 0, made.stderr
    return str(cluster.create_key("acme", role="developer", user=email)["key"])


@pytest.mark.redis
async def test_two_processes_serve_one_session_and_share_the_cap_and_limits(
    gateway_cluster: ClusterFactory, pg_database_url: str, fake: FakeUpstream, redis_prefix: str
) -> None:
    # One master key for both processes: a prompt sealed by one must open in the other.
    env = {"BASTION_MASTER_KEY": secrets.token_hex(32)}
    config = _config(fake, redis_prefix)
    cluster = gateway_cluster(config, processes=2, database_url=pg_database_url, redis_url=REDIS_URL, env=env)
    a, b = cluster.urls
    admin = {"authorization": f"Bearer {cluster.create_key('acme', role='admin')['key']}"}
    ann = {"authorization": f"Bearer {_user_key(cluster, 'ann@acme.test')}"}
    bob = {"authorization": f"Bearer {_user_key(cluster, 'bob@acme.test')}"}

    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            a + "/api/v1/admin/ai/prompts",
            json={"prompt_id": PROMPT, "system_prompt": SECRET, "model": MODEL},
            headers=admin,
        )
        assert created.status_code in (200, 201), created.text

        # Start on A, chat on B, chat on A, history on B.
        started = await http.post(a + "/api/v1/ai/sessions/start", json={"prompt_id": PROMPT}, headers=ann)
        assert started.status_code == 200, (started.text, cluster.log_tails())
        agent_id = started.json()["agent_id"]
        one = await http.post(b + "/api/v1/ai/chat", json={"agent_id": agent_id, "message": "first"}, headers=ann)
        assert one.status_code == 200, (one.text, cluster.log_tails())
        two = await http.post(a + "/api/v1/ai/chat", json={"agent_id": agent_id, "message": "second"}, headers=ann)
        assert two.status_code == 200, two.text
        # A sent the history B stored.
        assert fake.requests(UPSTREAM)[-1].body["messages"][1:] == [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": REPLY},
            {"role": "user", "content": "second"},
        ]
        history = await http.get(b + f"/api/v1/ai/sessions/{agent_id}/history", headers=ann)
        assert [(m["role"], m["content"], m["interaction_id"]) for m in history.json()["data"]] == [
            ("user", "first", one.json()["interaction_id"]),
            ("assistant", REPLY, one.json()["interaction_id"]),
            ("user", "second", two.json()["interaction_id"]),
            ("assistant", REPLY, two.json()["interaction_id"]),
        ]
        assert SECRET not in history.text
        # Another owner gets the 404 from either process.
        for url in (a, b):
            stolen = await http.get(url + f"/api/v1/ai/sessions/{agent_id}/history", headers=bob)
            assert stolen.status_code == 404

        # 20 concurrent starts over both processes: exactly 10 succeed.
        starts = await asyncio.gather(
            *(
                http.post((a, b)[i % 2] + "/api/v1/ai/sessions/start", json={"prompt_id": PROMPT}, headers=bob)
                for i in range(20)
            )
        )
        statuses = sorted(response.status_code for response in starts)
        assert statuses == [200] * 10 + [409] * 10, [r.text for r in starts if r.status_code not in (200, 409)]
        active = (await http.get(b + "/api/v1/ai/sessions/active", headers=bob)).json()["data"]
        assert len(active) == 10

        # The per-agent limit holds across processes (Redis): 15 concurrent messages, 10 pass.
        target = json.loads(next(r.text for r in starts if r.status_code == 200))["agent_id"]
        chats = await asyncio.gather(
            *(
                http.post((a, b)[i % 2] + "/api/v1/ai/chat", json={"agent_id": target, "message": "m"}, headers=bob)
                for i in range(15)
            )
        )
        statuses = sorted(response.status_code for response in chats)
        assert statuses == [200] * 10 + [429] * 5, [r.text for r in chats if r.status_code not in (200, 429)]

        # A stream whose client goes away cancels the upstream call and stores nothing.
        fake.script(UPSTREAM, ["slow_stream"])
        before = len((await http.get(a + f"/api/v1/ai/sessions/{agent_id}/history", headers=ann)).json()["data"])
        body = {"agent_id": agent_id, "message": "tell me a long story"}
        async with http.stream("POST", b + "/api/v1/ai/chat/stream", json=body, headers=ann) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    break  # and leave: the connection closes
        deadline = asyncio.get_running_loop().time() + 10
        while not fake.disconnects(UPSTREAM) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)  # bounded polling for the upstream to see the cancellation
        assert fake.disconnects(UPSTREAM), cluster.log_tails()
        after = (await http.get(a + f"/api/v1/ai/sessions/{agent_id}/history", headers=ann)).json()["data"]
        assert len(after) == before
