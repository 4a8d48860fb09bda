"""``responses: native``: /v1/responses passed through to the upstream's own Responses API, with the
unmodified OpenAI SDK, inside the pipeline (limits charged, the ledger's row), and
/v1/responses/input_tokens answered by the upstream's counter (exact) or Bastion's estimate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bastion.config.settings import DeploymentSettings
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.responses.support import EVENT_SCHEMAS, ResponsesEnv, deployment
from tests.sessions.support import MovableClock, seed_keys
from tests.support.fake_responses import FAKE_INPUT_TOKENS, fake_input_tokens
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.harness import make_settings, running_gateway, wait_until
from tests.support.openai_spec import validate, validate_response

NATIVE = "native-model"
NATIVE_UPSTREAM = "native-upstream"
TPM = 100_000


@pytest.fixture
async def native_env(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[ResponsesEnv]:
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=[{"name": NATIVE, "deployments": [{**deployment(fake, NATIVE_UPSTREAM), "responses": "native"}]}],
        router={"retries": 0},
        limits={"backend": "memory", "tenant": {"tpm": TPM}},
        ledger={"enabled": True, "flush_interval_s": 0.05},
    )
    keys = await seed_keys(database)
    async with running_gateway(settings, timeout_s=30) as running:
        yield ResponsesEnv(running.gateway, running.client, database, MovableClock(), fake, keys)


async def _rows(env: ResponsesEnv) -> list[Interaction]:
    async with env.db.session() as session:
        return list((await session.scalars(select(Interaction).where(Interaction.model == NATIVE))).all())


def _remaining_tokens(headers: Any) -> int:
    return int(headers["x-ratelimit-remaining-tokens"])


async def test_plain_create_is_passed_through_and_recorded(native_env: ResponsesEnv) -> None:
    env = native_env
    client = env.openai("ann")
    raw = await client.responses.with_raw_response.create(
        model=NATIVE, input="Say hello.", instructions="Be brief.", metadata={"t": "1"}, previous_response_id="resp_up1"
    )
    response = raw.parse()
    assert response.output_text == answer_text(NATIVE_UPSTREAM)
    assert response.id.startswith("resp_") and response.usage is not None
    assert response.usage.input_tokens == FAKE_INPUT_TOKENS  # the upstream's own usage, relayed
    validate_response("/responses", "post", json.loads(raw.http_response.text))
    (sent,) = env.fake.requests(NATIVE_UPSTREAM)
    # The client's Responses body, on the upstream's /responses; previous_response_id forwarded as is.
    assert sent.path == "/v1/responses"
    assert sent.body["input"] == "Say hello." and sent.body["instructions"] == "Be brief."
    assert sent.body["previous_response_id"] == "resp_up1" and sent.body["metadata"] == {"t": "1"}
    assert "messages" not in sent.body and "bastion" not in sent.body
    # Bastion's store keeps nothing of a native response: the upstream holds it.
    assert (await env.client.get(f"/v1/responses/{response.id}", headers=env.auth("ann"))).status_code == 404

    rows = await wait_until(lambda: _rows(env), what="the ledger row")
    (row,) = rows
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (
        FAKE_INPUT_TOKENS,
        len(answer_text(NATIVE_UPSTREAM).split(" ")),
        False,
    )
    assert row.response_text == answer_text(NATIVE_UPSTREAM)
    assert row.extra is not None and row.extra["passthrough"] is True

    # Limits settle with the upstream's usage: the next identical request finds exactly that spent.
    first = _remaining_tokens(raw.http_response.headers)
    again = await client.responses.with_raw_response.create(
        model=NATIVE, input="Say hello.", instructions="Be brief.", metadata={"t": "1"}, previous_response_id="resp_up1"
    )
    assert first - _remaining_tokens(again.http_response.headers) == response.usage.total_tokens


async def test_streamed_create_relays_the_upstream_events(native_env: ResponsesEnv) -> None:
    env = native_env
    client = env.openai("ann")
    kinds = []
    text = []
    async with client.responses.stream(model=NATIVE, input="Say hello.") as stream:
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text.append(event.delta)
        final = await stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(text) == answer_text(NATIVE_UPSTREAM) == final.output_text
    (sent,) = env.fake.requests(NATIVE_UPSTREAM)
    assert sent.path == "/v1/responses" and sent.body["stream"] is True

    events = await env.stream_events(model=NATIVE, input="Say hello.")  # every event against the spec
    assert {e["type"] for e in events} <= set(EVENT_SCHEMAS)
    rows = await wait_until(lambda: _rows_if(env, 2), what="both ledger rows")
    for row in rows:
        assert row.stream and row.prompt_tokens == FAKE_INPUT_TOKENS and not row.tokens_estimated
        assert row.response_text == answer_text(NATIVE_UPSTREAM)


async def _rows_if(env: ResponsesEnv, count: int) -> list[Interaction] | None:
    rows = await _rows(env)
    return rows if len(rows) == count else None


async def test_an_upstream_401_quoting_the_key_is_scrubbed(native_env: ResponsesEnv) -> None:
    env = native_env
    env.fake.script(NATIVE_UPSTREAM, ["reject_key", "reject_key"])
    with pytest.raises(openai.APIStatusError) as caught:
        await env.openai("ann").responses.create(model=NATIVE, input="hi")
    body = caught.value.response.json()
    validate("ErrorResponse", body)
    assert "test-key" not in caught.value.response.text
    response = await env.create(model=NATIVE, input="hi", stream=True)  # before the first byte: plain HTTP error
    assert response.status_code == caught.value.status_code and "test-key" not in response.text
    validate("ErrorResponse", response.json())


async def test_input_tokens_exact_from_the_upstream_and_estimate_when_it_fails(native_env: ResponsesEnv) -> None:
    env = native_env
    body = {"model": NATIVE, "input": [{"role": "user", "content": "hi"}], "previous_response_id": "resp_up1"}
    client = env.openai("ann")
    raw = await client.responses.input_tokens.with_raw_response.count(**body)  # type: ignore[arg-type]
    assert raw.http_response.headers["x-bastion-token-count"] == "exact"
    assert raw.parse().input_tokens == fake_input_tokens(body)
    validate_response("/responses/input_tokens", "post", json.loads(raw.http_response.text))
    (sent,) = env.fake.requests(NATIVE_UPSTREAM)
    assert sent.path == "/v1/responses/input_tokens" and sent.body["previous_response_id"] == "resp_up1"

    env.fake.script(NATIVE_UPSTREAM, ["500"])
    fallback = await env.client.post("/v1/responses/input_tokens", json=body, headers=env.auth("ann"))
    assert fallback.status_code == 200 and fallback.headers["x-bastion-token-count"] == "estimate"
    assert 0 < fallback.json()["input_tokens"] < 100  # Bastion's estimate of "hi", not the upstream's 2010
    validate_response("/responses/input_tokens", "post", fallback.json())


def test_native_is_for_openai_deployments_only() -> None:
    with pytest.raises(ValidationError, match="responses: native needs provider openai"):
        DeploymentSettings.model_validate({"provider": "anthropic", "model": "m", "responses": "native"})
    assert DeploymentSettings.model_validate({"provider": "openai", "model": "m"}).responses == "translate"
