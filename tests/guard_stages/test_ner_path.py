"""The named-entity tier in the running gateway: off on the request path by default, on for a
tenant whose guard policy asks (``pii_ner``), and in the ledger's redaction of ``redacted``-mode
content (``ledger.redact_names``), which runs in the background writer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.ledger.redact import ContentRedactor
from tests.guard_stages.support import MODEL, UPSTREAM, GuardEnv, GuardFake, user_texts

pytestmark = pytest.mark.local_model("ner")

NAME = "Maria Schneider"
ADDRESS = "14 Crown Street"
EMAIL = "maria.schneider@fjord-mail.se"
PROMPT = f"Draft a reply to {NAME} ({EMAIL}), who lives at {ADDRESS}, about her late delivery."
ANSWER = f"Dear {NAME}, we are sorry that the parcel for {ADDRESS} is late."


def chat_body(text: str = PROMPT) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


async def test_names_reach_the_upstream_by_default(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    response = await guard_env.chat(caller, chat_body())
    assert response.status_code == 200, response.text
    [received] = guard_fake.requests(UPSTREAM)
    [sent] = user_texts(received.body)
    assert NAME in sent and ADDRESS in sent and EMAIL not in sent  # the structured tier still redacts
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert set(row["guard"]["input"]["scanners"]["pii"]["findings"]) == {"EMAIL_ADDRESS"}


async def test_a_tenant_policy_turns_the_tier_on(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant(tenant={"guard": {"pii_ner": True}})
    response = await guard_env.chat(caller, chat_body())
    assert response.status_code == 200, response.text
    [received] = guard_fake.requests(UPSTREAM)
    [sent] = user_texts(received.body)
    assert NAME not in sent and ADDRESS not in sent and EMAIL not in sent
    assert "[PERSON]" in sent and "[STREET_ADDRESS]" in sent and "[EMAIL_ADDRESS]" in sent
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    findings = row["guard"]["input"]["scanners"]["pii"]["findings"]
    assert findings["PERSON"] == 1 and findings["STREET_ADDRESS"] == 1
    assert NAME.encode() not in orjson.dumps(row["request_messages"])


async def test_a_key_may_ask_for_some_types_only(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant(key={"guard": {"pii_ner": True, "pii_entities": ["EMAIL_ADDRESS", "PERSON"]}})
    response = await guard_env.chat(caller, chat_body())
    assert response.status_code == 200, response.text
    [sent] = user_texts(guard_fake.requests(UPSTREAM)[0].body)
    assert NAME not in sent and ADDRESS in sent and "[PERSON]" in sent


async def test_a_misspelt_entity_type_drops_that_field_only(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant(key={"guard": {"pii_ner": True, "pii_entities": ["PERSONS"]}})
    response = await guard_env.chat(caller, chat_body())
    assert response.status_code == 200, response.text
    [sent] = user_texts(guard_fake.requests(UPSTREAM)[0].body)
    assert NAME not in sent and "[PERSON]" in sent  # pii_ner still applies, with every named-entity type


async def test_redacted_ledger_content_loses_names(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    guard_fake.answer(UPSTREAM, ANSWER)
    caller = await guard_env.tenant(tenant={"ledger_mode": "redacted"})
    response = await guard_env.chat(caller, chat_body())
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == ANSWER  # the caller gets the answer as is
    [sent] = user_texts(guard_fake.requests(UPSTREAM)[0].body)
    assert NAME in sent  # the request path did not run the model
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    stored = orjson.dumps({"messages": row["request_messages"], "answer": row["response_text"]}).decode()
    assert NAME not in stored and "Schneider" not in stored and ADDRESS not in stored and EMAIL not in stored
    assert "[PERSON]" in row["response_text"] and "[STREET_ADDRESS]" in row["request_messages"][0]["content"]


async def test_the_ledger_setting_turns_name_redaction_off(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    writer = guard_env.gateway.services.ledger
    assert writer is not None and writer._redactor is not None
    writer._redactor = ContentRedactor(names=writer.settings.model_copy(update={"redact_names": False}).redact_names)
    caller = await guard_env.tenant(tenant={"ledger_mode": "redacted"})
    response = await guard_env.chat(caller, chat_body())
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    content = row["request_messages"][0]["content"]
    assert NAME in content and EMAIL not in content and "[EMAIL_ADDRESS]" in content
