"""The vault's admin API: role checks on every route, tenant isolation, audited plaintext reads,
and no 500 whatever a client sends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bastion.store.models import AuditEvent
from tests.vault.gateway_support import VaultGateway
from tests.vault.support import SECRET_TEXT

READS = [("GET", "", None), ("GET", "/bot", None), ("GET", "/bot/versions", None)]
WRITES = [
    ("POST", "", {"prompt_id": "new-bot", "system_prompt": "x"}),
    ("POST", "/bot/versions", {"system_prompt": "v2"}),
    ("PUT", "/bot", {"system_prompt": "v2 by put"}),
    ("PUT", "/bot/labels/staging", {"version": 1}),
    ("POST", "/bot/clone", {"new_prompt_id": "bot-clone"}),
    ("POST", "/bot/archive", None),
]
PLAINTEXT = ("GET", "/bot/versions/1/plaintext", None)
#: Which roles may do what (Permission.READ_PROMPTS / WRITE_PROMPTS / READ_PROMPT_PLAINTEXT).
ALLOWED = {
    "admin": {"read", "write", "plaintext"},
    "developer": {"read", "write"},
    "viewer": {"read"},
    "service": set(),
}


async def _create_bot(env: VaultGateway) -> None:
    body = {"prompt_id": "bot", "system_prompt": SECRET_TEXT, "user_template": "Hi {{ name }}", "model": "vault-model"}
    response = await env.admin("POST", "", json=body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("role", sorted(ALLOWED))
async def test_role_checks(vault_gateway: VaultGateway, role: str) -> None:
    await _create_bot(vault_gateway)
    calls = [("read", c) for c in READS] + [("write", c) for c in WRITES] + [("plaintext", PLAINTEXT)]
    for kind, (method, path, body) in calls:
        response = await vault_gateway.admin(method, path, who=f"acme-{role}", json=body)
        if kind in ALLOWED[role]:
            assert response.status_code in (200, 201), (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "permission_denied"
        if kind != "plaintext":
            assert SECRET_TEXT not in response.text


async def test_no_credentials_is_401(vault_gateway: VaultGateway) -> None:
    response = await vault_gateway.client.get("/api/v1/admin/ai/prompts")
    assert response.status_code == 401


async def test_another_tenants_prompt_is_404(vault_gateway: VaultGateway) -> None:
    await _create_bot(vault_gateway)
    for method, path, body in [*READS, *WRITES, PLAINTEXT]:
        response = await vault_gateway.admin(method, path, who="globex-admin", json=body)
        if path == "":
            assert response.status_code in (200, 201)  # globex's own list / its own new prompt
            assert "bot" not in [p["prompt_id"] for p in response.json().get("data", [])]
        else:
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["message"] == "The prompt 'bot' does not exist."
    # And acme's prompt is untouched by all of that.
    info = (await vault_gateway.admin("GET", "/bot")).json()
    assert info["latest_version"] == 1 and info["labels"] == {"production": 1} and info["archived"] is False


async def test_plaintext_read_is_audited_and_not_cached(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create_bot(env)
    response = await env.admin("GET", "/bot/versions/1/plaintext")
    assert response.status_code == 200
    assert response.json() == {
        "prompt_id": "bot",
        "version": 1,
        "system_prompt": SECRET_TEXT,
        "user_template": "Hi {{ name }}",
    }
    assert response.headers["cache-control"] == "no-store"
    async with env.db.session() as session:
        events = (
            await session.execute(select(AuditEvent).where(AuditEvent.action == "prompt.read_plaintext"))
        ).scalars()
        [event] = events.all()
    assert event.target == "prompt:bot" and event.actor.startswith("key:") and event.details["version"] == 1
    assert (await env.admin("GET", "/bot/versions/7/plaintext")).status_code == 404


async def test_admin_flow(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create_bot(env)
    second = await env.admin("PUT", "/bot", json={"system_prompt": "second", "labels": ["staging", "canary-1"]})
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["labels"] == ["canary-1", "staging"]
    moved = await env.admin("PUT", "/bot/labels/production", json={"version": 2})
    assert moved.json() == {"prompt_id": "bot", "label": "production", "version": 2, "previous_version": 1}
    info = (await env.admin("GET", "/bot")).json()
    assert info["labels"] == {"production": 2, "staging": 2, "canary-1": 2} and info["latest_version"] == 2
    versions = (await env.admin("GET", "/bot/versions")).json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["metadata"] == {"variables": ["name"]} and versions[0]["has_user_template"] is True
    clone = await env.admin("POST", "/bot/clone", json={"new_prompt_id": "bot2", "name": "Bot 2"})
    assert clone.status_code == 201 and clone.json()["labels"]["production"] == 2
    assert (await env.admin("POST", "/bot/archive")).json()["archived"] is True
    listed = (await env.admin("GET", "")).json()["data"]
    assert [p["prompt_id"] for p in listed] == ["bot2"]
    listed = (await env.admin("GET", "?include_archived=true")).json()["data"]
    assert [p["prompt_id"] for p in listed] == ["bot", "bot2"]


MALFORMED = [
    ("POST", "", b"not json"),
    ("POST", "", b"[1, 2]"),
    ("POST", "", b""),
    ("POST", "", {"prompt_id": "x"}),
    ("POST", "", {"system_prompt": "x"}),
    ("POST", "", {"prompt_id": "bad id!", "system_prompt": "x"}),
    ("POST", "", {"prompt_id": "x", "system_prompt": 5}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "unknown": 1}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "params": {"temperature": "hot"}}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "params": [1]}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "metadata": "m"}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "user_template": "{% if %}"}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "labels": "production"}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "labels": ["12"]}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "name": 5}),
    ("POST", "", {"prompt_id": "x", "system_prompt": "x", "model": ["m"]}),
    ("POST", "", {"prompt_id": "bot", "system_prompt": "duplicate"}),
    ("POST", "/bot/versions", {"system_prompt": None}),
    ("PUT", "/bot/labels/production", {"version": "one"}),
    ("PUT", "/bot/labels/production", {"version": True}),
    ("PUT", "/bot/labels/production", {"version": 0}),
    ("PUT", "/bot/labels/production", {}),
    ("PUT", "/bot/labels/7", {"version": 1}),
    ("POST", "/bot/clone", {"new_prompt_id": None}),
    ("POST", "/bot/clone", {"new_prompt_id": "c", "name": 1}),
    ("GET", "/bot/versions/abc/plaintext", None),
    ("GET", "/bot/versions/-1/plaintext", None),
    ("GET", "/bot/versions/99999999999999999999/plaintext", None),
    ("GET", "/bad%20id", None),
]


async def test_malformed_input_is_a_4xx_never_a_500(vault_gateway: VaultGateway) -> None:
    await _create_bot(vault_gateway)
    for method, path, body in MALFORMED:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await vault_gateway.admin(method, path, **kwargs)
        assert response.status_code in (400, 404, 409), (method, path, body, response.text)
        error = response.json()["error"]
        assert error["message"] and "Traceback" not in error["message"]
    info = (await vault_gateway.admin("GET", "/bot")).json()
    assert info["latest_version"] == 1 and info["labels"] == {"production": 1}
