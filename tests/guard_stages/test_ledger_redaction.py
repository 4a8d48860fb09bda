"""Every ledger field that can carry a caller's data is redacted per policy, and embeddings inputs
are guarded like chat messages (upstream and ledger).

Default settings: the guard redacts PII and secrets in what the caller sends; the ledger keeps
content (``full``), redacting the caller's own system messages (``ledger.system_messages``) and the
fields a client fills freely (user agent, an unknown model name, an error quoting it).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.guard_stages.support import MODEL, UPSTREAM, GuardEnv, GuardFake

EMAIL = "jane.doe@gmail.com"
CARD = "4111 1111 1111 1111"
EMBED = "guard-embed"
EMBED_UPSTREAM = "guard-embed-upstream"


@pytest.fixture
def guard_overrides(guard_fake_upstream: GuardFake) -> dict[str, Any]:
    def deployment(model: str) -> dict[str, Any]:
        return {"provider": "openai", "model": model, "api_base": guard_fake_upstream.openai_base, "api_key": "k"}

    return {
        "models": [
            {"name": MODEL, "deployments": [deployment(UPSTREAM)]},
            {"name": EMBED, "kind": "embedding", "deployments": [deployment(EMBED_UPSTREAM)]},
        ]
    }


def stored_text(row: dict[str, Any]) -> str:
    return str({k: row.get(k) for k in ("request_messages", "response_text", "user_agent", "model", "error_message")})


async def test_the_callers_system_message_is_redacted_in_the_ledger(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    messages = [
        {"role": "system", "content": f"The customer is {EMAIL}, card {CARD}. Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    response = await guard_env.chat(caller, {"model": MODEL, "messages": messages})
    assert response.status_code == 200, response.text
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    system = row["request_messages"][0]
    assert system["role"] == "system" and "Be brief." in system["content"]
    assert EMAIL not in stored_text(row) and "4111" not in stored_text(row)
    assert "[EMAIL_ADDRESS]" in system["content"]


async def test_anthropic_system_field_is_redacted_in_the_ledger(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    body = {
        "model": MODEL,
        "max_tokens": 32,
        "system": f"Reply to {EMAIL} only.",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    response = await guard_env.messages(caller, body)
    assert response.status_code == 200, response.text
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert EMAIL not in stored_text(row)
    assert any("[EMAIL_ADDRESS]" in str(m.get("content")) for m in row["request_messages"])


@pytest.mark.parametrize(
    ("mode", "expected"), [("drop", None), ("keep", f"Reply to {EMAIL} only.")], ids=["drop", "keep"]
)
async def test_the_ledger_policy_decides_about_system_messages(
    guard_env: GuardEnv, guard_fake: GuardFake, mode: str, expected: str | None
) -> None:
    # The writer's policy is a setting of the process; this test flips it on the running writer.
    writer = guard_env.gateway.services.ledger
    assert writer is not None
    writer.settings = writer.settings.model_copy(update={"system_messages": mode})
    caller = await guard_env.tenant()
    messages = [{"role": "system", "content": f"Reply to {EMAIL} only."}, {"role": "user", "content": "Hi"}]
    response = await guard_env.chat(caller, {"model": MODEL, "messages": messages})
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    systems = [m["content"] for m in row["request_messages"] if m["role"] == "system"]
    assert systems == ([] if expected is None else [expected])


async def test_embeddings_inputs_are_guarded_upstream_and_in_the_ledger(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    texts = [f"Contact {EMAIL} about the order.", "Nothing personal here."]
    response = await guard_env.client.post(
        "/v1/embeddings", json={"model": EMBED, "input": texts}, headers=caller.headers()
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    sent = guard_fake.requests(EMBED_UPSTREAM)[0].body["input"]
    assert sent == ["Contact [EMAIL_ADDRESS] about the order.", "Nothing personal here."]
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["request_messages"] == sent and EMAIL not in stored_text(row)
    assert row["guard"]["input"]["scanners"]["pii"]["flagged"] is True


async def test_a_single_embeddings_string_stays_a_string(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    response = await guard_env.client.post(
        "/v1/embeddings", json={"model": EMBED, "input": f"mail {EMAIL}"}, headers=caller.headers()
    )
    assert response.status_code == 200, response.text
    assert guard_fake.requests(EMBED_UPSTREAM)[0].body["input"] in ("mail [EMAIL_ADDRESS]", ["mail [EMAIL_ADDRESS]"])
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["request_messages"] == "mail [EMAIL_ADDRESS]"


async def test_a_blocked_embeddings_input_never_goes_upstream(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant(key={"guard": {"pii": "block"}})
    response = await guard_env.client.post(
        "/v1/embeddings", json={"model": EMBED, "input": [f"card {CARD}"]}, headers=caller.headers()
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "content_blocked"
    assert guard_fake.requests(EMBED_UPSTREAM) == []


async def test_user_agent_unknown_model_and_its_error_are_redacted(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    headers = {**caller.headers(), "user-agent": f"billing-bot/1.0 (owner {EMAIL})"}
    body = {"model": f"model-of-{EMAIL}", "messages": [{"role": "user", "content": "Hi"}]}
    response = await guard_env.client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 404
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert EMAIL not in stored_text(row)
    assert row["user_agent"].startswith("billing-bot/1.0") and "[EMAIL_ADDRESS]" in row["user_agent"]
    assert "[EMAIL_ADDRESS]" in row["model"] and "[EMAIL_ADDRESS]" in row["error_message"]
