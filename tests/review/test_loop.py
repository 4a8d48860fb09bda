"""The whole loop on the embedded default (SQLite) and PostgreSQL, through the in-process gateway
and its HTTP API: interactions through the gateway to the fake upstream -> prepare -> two
reviewers score (one corrects an answer) -> agreement -> a dataset version -> export as a
background job -> the file, checked by the independent validator, downloaded and re-exported
byte-identically. Another tenant's reviewer sees none of it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant, User
from bastion.vault.model import VersionSpec
from tests.review.reference import cookbook_format_errors, jsonl
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import make_settings, running_gateway, wait_until

MODEL, UPSTREAM = "loop-gpt", "loop-gpt-up"
SECRET = "You are LYNX-4471, Acme's support agent. Answer in one sentence."
KEYS = {
    "admin": ("acme", "admin"),
    "app": ("acme", "service"),
    "rita": ("acme", "reviewer"),
    "rob": ("acme", "reviewer"),
    "dev": ("acme", "developer"),
    "gina": ("globex", "reviewer"),
    "gus": ("globex", "admin"),
}


@dataclass
class Loop:
    gateway: Gateway
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(who), **kwargs)

    async def ok(self, who: str, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.call(who, method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


async def _seed(db: Database) -> dict[str, str]:
    keys: dict[str, str] = {}
    async with db.transaction() as session:
        tenants = {name: Tenant(name=name) for name in ("acme", "globex")}
        session.add_all(tenants.values())
        await session.flush()
        for name, (tenant, role) in KEYS.items():
            user = User(tenant_id=tenants[tenant].id, email=f"{name}@{tenant}.test", role=role)
            session.add(user)
            await session.flush()
            secret = generate_key()
            keys[name] = secret
            session.add(
                ApiKey(
                    tenant_id=tenants[tenant].id, user_id=user.id, name=name, prefix=listed_prefix(secret),
                    key_hash=hash_key(secret), role=role,
                )
            )  # fmt: skip
        keys["acme_id"] = tenants["acme"].id
    return keys


@pytest.fixture
async def loop(database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Loop]:
    deployment = {"provider": "openai", "model": UPSTREAM, "api_base": fake.openai_base, "api_key": "test-key"}
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=[{"name": MODEL, "deployments": [deployment]}],
        router={"retries": 0},
        ledger={"enabled": True, "flush_interval_s": 0.01},
        jobs={"poll_interval_s": 0.05, "cancel_poll_s": 0.05, "heartbeat_interval_s": 0.5},
    )
    keys = await _seed(database)
    async with running_gateway(settings, timeout_s=30) as running:
        await running.gateway.services.vault.create_prompt(
            keys["acme_id"], "support-bot", VersionSpec(SECRET, model=MODEL), actor="test"
        )
        yield Loop(running.gateway, running.client, keys)


HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    {"role": "user", "content": "Should I take an umbrella?"},
]  # fmt: skip


WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


async def _interactions(env: Loop) -> None:
    for i in range(12):
        if i == 1:
            body: dict[str, Any] = {"model": MODEL, "messages": HISTORY, "tools": [WEATHER_TOOL]}
        elif i % 2:
            body = {"model": "prompt:support-bot", "messages": [{"role": "user", "content": f"Where is order {i}?"}]}
        else:
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"Question number {i}?"}]}
        await env.ok("app", "POST", "/v1/chat/completions", json=body)

    async def recorded() -> bool:
        listing = await env.ok("admin", "GET", "/api/v1/admin/interactions", params={"limit": 50})
        return len(listing["data"]) >= 12

    await wait_until(recorded, timeout_s=20, what="the calls in the ledger")


def _accuracy(reviewer: int, position: int) -> int:
    base = 2 + position % 4
    return min(5, base + 1) if reviewer == 1 and position % 3 == 0 else base


def _review(reviewer: int, position: int) -> dict[str, Any]:
    scores = {"relevance": 4, "accuracy": _accuracy(reviewer, position), "helpfulness": 4, "safety": 5,
              "coherence": 4, "completeness": 3 + reviewer}  # fmt: skip
    if reviewer == 1 and position == 0:
        return {"scores": scores, "verdict": "needs-edit", "corrected_answer": "The corrected answer."}
    return {"scores": scores, "verdict": "approve", "feedback": f"reviewed by {reviewer}"}


async def test_interactions_to_a_validated_fine_tune_file(loop: Loop) -> None:
    env = loop
    await _interactions(env)
    batch = await env.ok(
        "admin", "POST", "/api/v1/admin/ai/finetune/prepare", 201, json={"purpose": "sft", "reviewers_per_item": 2}
    )
    assert batch["item_count"] == 12
    base = f"/api/v1/admin/review/batches/{batch['id']}"

    # Another tenant's reviewer sees nothing; a reviewer cannot prepare or build.
    assert (await env.call("gina", "GET", base)).status_code == 404
    assert (await env.call("gina", "POST", f"{base}/claim")).status_code == 404
    assert (await env.ok("gina", "GET", "/api/v1/admin/review/batches"))["data"] == []
    assert (await env.call("rita", "POST", "/api/v1/admin/ai/finetune/prepare", json={})).status_code == 403
    assert (await env.call("rita", "POST", "/api/v1/admin/datasets/x/versions", json={})).status_code == 403

    # Two reviewers at once; each claim is locked to one of them.
    seen: dict[str, list[int]] = {"rita": [], "rob": []}

    async def work(who: str, index: int) -> None:
        while (item := (await env.ok(who, "POST", f"{base}/claim"))["item"]) is not None:
            assert "key_id" not in item["interaction"]
            seen[who].append(item["position"])
            review = _review(index, item["position"])
            await env.ok(who, "POST", f"/api/v1/admin/ai/finetune/review/{item['id']}", 201, json=review)
            gina = await env.call("gina", "POST", f"/api/v1/admin/ai/finetune/review/{item['id']}", json=review)
            assert gina.status_code == 404

    await asyncio.gather(work("rita", 0), work("rob", 1))
    assert sorted(seen["rita"]) == sorted(seen["rob"]) == list(range(12))
    progress = await env.ok("admin", "GET", f"{base}/progress")
    assert [(r["done"], r["leased"]) for r in progress["reviewers"]] == [(12, 0), (12, 0)]
    assert progress["counts"]["items_complete"] == 12

    agreement = await env.ok("admin", "GET", f"{base}/agreement")
    a = np.array([_accuracy(0, p) for p in range(12)])
    b = np.array([_accuracy(1, p) for p in range(12)])
    labels = sorted(set(a.tolist()) | set(b.tolist()))
    table = np.array([[np.sum((a == i) & (b == j)) for j in labels] for i in labels])
    expected = float(cohens_kappa(table, return_results=False))
    assert agreement["dimensions"]["accuracy"]["cohen_kappa"] == pytest.approx(expected)
    assert agreement["dimensions"]["relevance"]["cohen_kappa"] is None  # no variation: undefined
    assert agreement["approval_rate"]["n"] == 24 and agreement["approval_rate"]["passed"] == 23

    version = await env.ok("admin", "POST", "/api/v1/admin/datasets/support/versions", 201, json={})
    assert version["example_count"] == 12
    manifest = (await env.ok("admin", "GET", "/api/v1/admin/datasets/support/versions/1"))["manifest"]
    assert manifest["counts"]["edited"] == 1 and manifest["counts"]["with_tool_calls"] == 1
    assert manifest["counts"]["with_vault_prompt"] == 5 and len(manifest["source_interaction_ids"]) == 12

    # A developer may export, but not the vault's text; the admin may (audited).
    refused = await env.call(
        "dev", "POST", "/api/v1/admin/datasets/support/versions/1/exports", json={"format": "openai"}
    )
    assert refused.status_code == 403
    queued = await env.ok(
        "admin", "POST", "/api/v1/admin/datasets/support/versions/1/exports", 202,
        json={"format": "openai", "background": True},
    )  # fmt: skip
    assert queued["status"] == "queued" and queued["job_id"]

    async def exported() -> dict[str, Any] | None:
        body: dict[str, Any] = await env.ok("admin", "GET", f"/api/v1/admin/dataset-exports/{queued['id']}")
        return body if body["status"] in ("succeeded", "failed") else None

    export = await wait_until(exported, timeout_s=30, what="the export job")
    assert export["status"] == "succeeded" and export["lines"] == 12, export
    content = await env.client.get(f"/api/v1/admin/dataset-exports/{export['id']}/content", headers=env.auth("admin"))
    data = content.content
    assert hashlib.sha256(data).hexdigest() == export["sha256"] == content.headers["x-bastion-sha256"]
    lines = jsonl(data)
    assert cookbook_format_errors(lines) == {}
    with_prompt = [line for line in lines if line["messages"][0]["role"] == "system"]
    assert len(with_prompt) == 5 and all(line["messages"][0]["content"] == SECRET for line in with_prompt)
    assert lines[0]["messages"][-1] == {"role": "assistant", "content": "The corrected answer.", "weight": 1}
    assert any(m.get("tool_calls") for m in lines[1]["messages"])
    assert lines[1]["tools"] == [WEATHER_TOOL]  # the definitions the ledger recorded with the call
    assert all("tools" not in line for i, line in enumerate(lines) if i != 1)
    audit = await env.ok("admin", "GET", "/api/v1/admin/audit", params={"limit": 100})
    actions = {event["action"] for event in audit["data"]}
    assert {"review.prepare", "review.claim", "review.submit", "dataset.build", "dataset.export"} <= actions
    assert "prompt.read_plaintext" in actions

    # The file is an ordinary file of the exporter's: listed and downloadable through /v1/files.
    listed = await env.ok("admin", "GET", "/v1/files", params={"purpose": "fine-tune"})
    assert [f["id"] for f in listed["data"]] == [export["file_id"]]
    assert (await env.client.get(f"/v1/files/{export['file_id']}/content", headers=env.auth("admin"))).content == data

    again = await env.client.get(
        "/api/v1/admin/ai/finetune/export", params={"dataset": "support", "format": "openai"}, headers=env.auth("admin")
    )
    assert again.status_code == 200, again.text
    assert again.content == data and again.headers["x-bastion-export-id"] != export["id"]
    history = await env.ok("admin", "GET", "/api/v1/admin/datasets/support/versions/1/exports")
    assert len(history["data"]) == 2 and {e["sha256"] for e in history["data"]} == {export["sha256"]}
    assert (await env.call("gina", "GET", f"/api/v1/admin/dataset-exports/{export['id']}/content")).status_code == 403
    for path in (
        f"/api/v1/admin/dataset-exports/{export['id']}/content",
        f"/api/v1/admin/dataset-exports/{export['id']}",
        "/api/v1/admin/datasets/support/versions/1",
        f"{base}/agreement",
        f"/v1/files/{export['file_id']}",
    ):
        assert (await env.call("gus", "GET", path)).status_code == 404, path
    assert (await env.ok("gus", "GET", "/api/v1/admin/datasets"))["data"] == []


async def test_bad_input_is_a_clear_4xx(loop: Loop) -> None:
    env = loop
    prepare = "/api/v1/admin/ai/finetune/prepare"
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", prepare, {"json": []}, 400, "JSON object"),
        ("POST", prepare, {"json": {"kind": "triple"}}, 400, "kind"),
        ("POST", prepare, {"json": {"filter": {"model": "a\x00b"}}}, 400, "model"),
        ("POST", prepare, {"json": {"filter": {"from": "yesterday"}}}, 400, "ISO 8601"),
        ("POST", prepare, {"json": {"filter": {"limit": True}}}, 400, "limit"),
        ("POST", prepare, {"json": {"reviewers_per_item": 11}}, 400, "reviewers_per_item"),
        ("POST", prepare, {"json": {"surprise": 1}}, 400, "surprise"),
        ("POST", "/api/v1/admin/ai/finetune/review/not-an-id", {"json": {}}, 404, "No item"),
        ("POST", "/api/v1/admin/ai/finetune/review/" + "a" * 32, {"json": {}}, 404, "No review item"),
        ("GET", "/api/v1/admin/review/batches/%00", {}, 404, "No batch"),
        ("GET", "/api/v1/admin/datasets/a%00b", {}, 404, "No dataset"),
        ("GET", "/api/v1/admin/datasets/nope/versions/x", {}, 400, "version"),
        ("GET", "/api/v1/admin/ai/finetune/export", {}, 400, "dataset is required"),
        ("GET", "/api/v1/admin/ai/finetune/export", {"params": {"dataset": "a\x00"}}, 404, "No dataset"),
        ("POST", "/api/v1/admin/datasets/nope/versions/1/exports", {"json": {"format": "csv"}}, 400, "format"),
        ("POST", "/api/v1/admin/datasets/nope/versions/1/exports", {"json": {"format": "openai"}}, 404, "No dataset"),
        ("POST", "/api/v1/admin/datasets/nope/versions", {"json": {"min_quality": 9}}, 400, "min_quality"),
        ("POST", "/api/v1/admin/datasets/nope/versions", {"json": {}}, 400, "no reviewed item"),
    ]
    for method, path, kwargs, status, message in cases:
        response = await env.call("admin", method, path, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        assert message in response.json()["error"]["message"], (path, response.text)
