"""The analyzer's admin routes on the real pipeline: role checks, tenant isolation, the no-reveal
rule (spans for everyone allowed to analyse, excerpts only for those who may read the text,
audited), bad input as 400s, and the rewrite stored as an unlabelled draft version."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.store.models import AuditEvent, Interaction
from tests.support.fake_upstream import FakeUpstream
from tests.vault.gateway_support import UPSTREAM_MODEL, VaultGateway

#: Distinctive words: any of them in an answer means prompt text leaked.
SECRET_WORDS = ("ZEBRA-PLUM-7731", "Glimmerfen", "in order to keep", "{customer}")
SYSTEM = (
    "You are ZEBRA-PLUM-7731, the support bot of Glimmerfen. Try to answer in order to keep customers happy. "
    "Be concise. Explain each step in detail. Dear {customer}, thank you."
)
TEMPLATE = "Question: {{ question }}"
ANALYZE_TEXT = "/api/v1/admin/ai/analyze"


async def _create(env: VaultGateway, prompt_id: str = "bot", who: str = "acme-admin") -> None:
    body = {
        "prompt_id": prompt_id,
        "system_prompt": SYSTEM,
        "user_template": TEMPLATE,
        "model": "vault-model",
        "metadata": {"inputs": ["question", "locale"]},
    }
    response = await env.admin("POST", "", who=who, json=body)
    assert response.status_code == 201, response.text


def _assert_no_text(response: httpx.Response) -> None:
    for word in SECRET_WORDS:
        assert word not in response.text, word


async def _audits(env: VaultGateway, action: str) -> list[AuditEvent]:
    async with env.db.session() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows.scalars().all())


async def test_a_reader_gets_spans_and_no_text(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create(env)
    for who in ("acme-viewer", "acme-developer"):
        response = await env.admin("POST", "/bot/analyze", who=who)
        assert response.status_code == 200, response.text
        _assert_no_text(response)
        body = response.json()
        assert (body["prompt_id"], body["version"], body["label"], body["excerpts"]) == ("bot", 1, "production", False)
        found = {f["pattern_id"]: f for f in body["findings"]}
        assert {
            "clarity.hedged-instruction",
            "clarity.conflicting-length",
            "efficiency.wordy-phrase",
            "template.foreign-placeholder",
            "template.unused-variable",  # "locale" is declared in metadata.inputs, never used
        } <= set(found)
        span = found["efficiency.wordy-phrase"]["spans"][0]
        assert SYSTEM[span["start"] : span["end"]] == "in order to" and "excerpt" not in span
        assert body["tokens"]["system"] > 0 and body["tokens"]["template"] > 0
    assert await _audits(env, "prompt.read_plaintext") == []  # no text was read for them


async def test_an_admin_gets_excerpts_and_the_read_is_audited(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create(env)
    response = await env.admin("POST", "/bot/analyze", json={"version": 1, "variables": ["question"]})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["excerpts"] is True
    found = {f["pattern_id"]: f for f in body["findings"]}
    assert found["efficiency.wordy-phrase"]["spans"][0]["excerpt"] == "in order to"
    assert "template.unused-variable" not in found  # the request's variables replace metadata.inputs
    audits = await _audits(env, "prompt.read_plaintext")
    assert [(a.target, a.details.get("version")) for a in audits] == [("prompt:bot", 1)]


async def test_roles_without_prompts_read_are_refused(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create(env)
    response = await env.admin("POST", "/bot/analyze", who="acme-service")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    response = await env.client.post(ANALYZE_TEXT, json={"system_prompt": "x"}, headers=env.auth("acme-service"))
    assert response.status_code == 403
    assert (await env.client.post("/api/v1/admin/ai/prompts/bot/analyze")).status_code == 401


async def test_another_tenants_prompt_is_404_like_a_missing_one(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    await _create(env)
    for path, body in (("/bot/analyze", None), ("/bot/rewrite", {"model": "vault-model"})):
        theirs = await env.admin("POST", path, who="globex-admin", json=body)
        missing = await env.admin("POST", path.replace("bot", "nobody"), who="globex-admin", json=body)
        assert theirs.status_code == missing.status_code == 404, theirs.text
        assert theirs.json()["error"]["message"] == "The prompt 'bot' does not exist."
        _assert_no_text(theirs)
    versions = (await env.admin("GET", "/bot/versions")).json()["data"]
    assert [v["version"] for v in versions] == [1]  # globex's rewrite made nothing


async def test_an_unknown_version_or_label_is_a_404_naming_it(vault_gateway: VaultGateway) -> None:
    await _create(vault_gateway)
    for body, param in (({"version": 9}, "version"), ({"label": "staging"}, "label")):
        for path in ("/bot/analyze", "/bot/rewrite"):
            response = await vault_gateway.admin("POST", path, json={**body, "model": "vault-model"})
            assert response.status_code == 404, response.text
            assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/bot/analyze", {"colour": "red"}, "colour"),
        ("/bot/analyze", {"version": 1, "label": "production"}, "version"),
        ("/bot/analyze", {"version": "one"}, "version"),
        ("/bot/analyze", {"label": "123"}, "label"),
        ("/bot/analyze", {"variables": "question"}, "variables"),
        ("/bot/analyze", {"model": ""}, "model"),
        ("/bot/rewrite", {}, "model"),
        ("/bot/rewrite", {"model": "vault-model", "instructions": "x" * 2001}, "instructions"),
        ("/Bad Id!/analyze", None, "prompt_id"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    vault_gateway: VaultGateway, path: str, body: dict[str, Any] | None, param: str
) -> None:
    await _create(vault_gateway)
    response = await vault_gateway.admin("POST", path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_a_text_is_analysed_with_excerpts(vault_gateway: VaultGateway) -> None:
    env = vault_gateway
    body = {
        "system_prompt": "Please note that you answer, etc.",
        "user_template": "{{ a }} {{ b }}",
        "variables": ["a"],
    }
    response = await env.client.post(ANALYZE_TEXT, json=body, headers=env.auth("acme-viewer"))
    assert response.status_code == 200, response.text
    found = {f["pattern_id"]: f for f in response.json()["findings"]}
    assert found["efficiency.filler-phrase"]["spans"][0]["excerpt"] == "Please note that "
    assert found["template.undeclared-variable"]["spans"][0]["excerpt"] == "b"
    long = {"system_prompt": "Answer questions about billing in order to help. " * 600, "model": "gpt-4"}
    response = await env.client.post(ANALYZE_TEXT, json=long, headers=env.auth("acme-viewer"))  # off the loop
    assert response.status_code == 200, response.text
    assert response.json()["tokens"]["exact"] is True  # a cl100k model
    assert {"efficiency.repeated-sentence", "efficiency.wordy-phrase"} <= {
        f["pattern_id"] for f in response.json()["findings"]
    }
    bad_bodies: list[Any] = [
        {"system_prompt": "  "},
        {"system_prompt": "x", "user_template": 3},
        {"user_template": "x"},
        [],
    ]
    for bad in bad_bodies:
        response = await env.client.post(ANALYZE_TEXT, json=bad, headers=env.auth("acme-viewer"))
        assert response.status_code == 400, response.text


async def test_the_rewrite_becomes_an_unlabelled_draft_version(vault_gateway: VaultGateway, fake: FakeUpstream) -> None:
    env = vault_gateway
    await _create(env)
    fake.reset()
    response = await env.admin("POST", "/bot/rewrite", who="acme-developer", json={"model": "vault-model"})
    assert response.status_code == 201, response.text
    _assert_no_text(response)
    result = response.json()
    draft = result["draft"]
    assert (draft["version"], draft["labels"], result["model"]) == (2, [], "vault-model")
    assert draft["metadata"]["draft"]["source_version"] == 1
    assert "clarity.conflicting-length" in draft["metadata"]["draft"]["addressed"]
    assert draft["metadata"]["inputs"] == ["question", "locale"]  # the version's metadata is kept
    assert result["before"]["findings"] > 0

    # The model was asked through the pipeline, with the prompt and the findings.
    sent = fake.requests(UPSTREAM_MODEL)
    assert len(sent) == 1
    messages = sent[0].body["messages"]
    assert SYSTEM in messages[0]["content"] and "clarity.conflicting-length" in messages[0]["content"]

    # Production still serves version 1; the draft holds the model's answer and the same template.
    info = (await env.admin("GET", "/bot")).json()
    assert info["labels"] == {"production": 1} and info["latest_version"] == 2
    text = (await env.admin("GET", "/bot/versions/2/plaintext")).json()
    assert text["system_prompt"] == f"Hello from {UPSTREAM_MODEL}." and text["user_template"] == TEMPLATE

    # The ledger keeps the call's metadata only: the prompt's text is not in it.
    await env.gateway.stop()
    async with env.db.session() as session:
        rows = (await session.execute(select(Interaction))).scalars().all()
    record = next(r for r in rows if (r.extra or {}).get("purpose") == "prompt_rewrite")
    assert (record.content_mode, record.request_messages, record.response_text) == ("metadata", None, None)
    assert record.extra is not None and record.extra["prompt_id"] == "bot"
    assert "ZEBRA-PLUM-7731" not in json.dumps([r.request_messages for r in rows])


async def test_the_rewrite_needs_write_access_and_a_working_model(
    vault_gateway: VaultGateway, fake: FakeUpstream
) -> None:
    env = vault_gateway
    await _create(env)
    response = await env.admin("POST", "/bot/rewrite", who="acme-viewer", json={"model": "vault-model"})
    assert response.status_code == 403
    response = await env.admin("POST", "/bot/rewrite", json={"model": "no-such-model"})
    assert response.status_code == 404, response.text
    fake.default(UPSTREAM_MODEL, "500")
    response = await env.admin("POST", "/bot/rewrite", json={"model": "vault-model"})
    assert response.status_code >= 500 and response.status_code != 500, response.text
    _assert_no_text(response)
    versions = (await env.admin("GET", "/bot/versions")).json()["data"]
    assert [v["version"] for v in versions] == [1]  # nothing stored when the model fails
