"""The auth stage on the model endpoints, in process: who may call, and how refusals look in each
dialect (never a 500). The upstream is the suite's fake (``fake_upstream`` in tests/conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from bastion.auth.principal import Principal, Role
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.service import Gateway
from bastion.gateway.stage import Stage
from bastion.gateway.stages.auth import AuthStage
from bastion.store.db import Database
from tests.auth.support import bearer, seed_key, seed_user, settings_for
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway

MODEL = "fake-ok"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


class Recorder(Stage):
    """Sees what the auth stage left on the context."""

    name = "recorder"

    def __init__(self) -> None:
        self.principals: list[Principal | None] = []

    async def on_request(self, ctx: RequestContext) -> None:
        self.principals.append(ctx.principal)


class Started(NamedTuple):
    client: httpx.AsyncClient
    recorder: Recorder
    gateway: Gateway


@pytest.fixture
async def gateway_client(
    database: Database, database_url: str, tmp_path: Path, fake_upstream: FakeUpstream
) -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as opened:

        async def start(**auth: Any) -> Started:
            deployment = {"provider": "openai", "model": MODEL, "api_base": fake_upstream.openai_base, "api_key": "x"}
            settings = settings_for(
                database_url, tmp_path / "data", auth=auth, models=[{"name": MODEL, "deployments": [deployment]}]
            )
            recorder = Recorder()

            def auth_then_record(gateway: Gateway) -> None:
                gateway.pipeline = Pipeline([AuthStage(gateway.services.authenticator), recorder], gateway.router)

            running = await opened.enter_async_context(running_gateway(settings, before_start=auth_then_record))
            return Started(running.client, recorder, running.gateway)

        yield start


async def test_keys_call_models_in_both_dialects(database: Database, gateway_client: Callable[..., Any]) -> None:
    client, recorder, _ = await gateway_client()
    secret, key = await seed_key(database, "acme", Role.SERVICE)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
    assert response.status_code == 200, response.text
    anthropic = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": secret})
    assert anthropic.status_code == 200, anthropic.text
    assert [p.key_id if p else None for p in recorder.principals] == [key.id, key.id]


async def test_refusals_in_the_callers_dialect(database: Database, gateway_client: Callable[..., Any]) -> None:
    client, recorder, _ = await gateway_client()
    viewer, _ = await seed_key(database, "acme", Role.VIEWER)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 401, "authentication_error"),
        (bearer("bst_" + "q" * 40), 401, "authentication_error"),
        (bearer("bst_broken"), 401, "authentication_error"),
        (bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), 401, "authentication_error"),
        ({"authorization": "Basic Zm9vOmJhcg=="}, 401, "authentication_error"),
        ({"x-api-key": b"\xe9\xe8\xff"}, 401, "authentication_error"),  # not ASCII: latin-1 bytes
        (bearer(viewer), 403, "permission_error"),
    ]
    for headers, status, kind in cases:
        openai = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert openai.status_code == status, (headers, openai.text)
        assert openai.json()["error"]["type"] == kind and openai.json()["error"]["message"]
        anthropic = await client.post("/v1/messages", json=MESSAGES, headers=headers)
        assert anthropic.status_code == status, (headers, anthropic.text)
        assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == kind
        if status == 401:
            assert openai.headers["www-authenticate"].startswith("Bearer")
    assert recorder.principals == [], "a refused request must not reach later stages"


async def test_anonymous_calls_when_auth_is_off(database: Database, gateway_client: Callable[..., Any]) -> None:
    client, recorder, _ = await gateway_client(enabled=False, default_tenant="open")
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-anything"))).status_code == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=bearer("bst_bad"))).status_code == 401
    principal = recorder.principals[0]
    assert principal is not None and principal.tenant_name == "open" and principal.role is Role.SERVICE
    # The admin API stays closed to anonymous callers.
    assert (await client.get("/api/v1/admin/users")).status_code == 403


async def test_start_explains_how_to_get_the_first_admin_key(
    database: Database, gateway_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    await gateway_client()
    assert "bastion keys create --role admin --tenant" in capsys.readouterr().err
    await seed_key(database, "acme", Role.ADMIN)
    await gateway_client()
    assert "bastion keys create" not in capsys.readouterr().err


async def test_expired_and_forged_jwts_over_http(database: Database, gateway_client: Callable[..., Any]) -> None:
    import time

    import jwt

    secret = "jwt-secret-" + "k" * 64
    client, _, _ = await gateway_client(jwt={"enabled": True, "secret": secret})
    await seed_user(database, "acme", "dev@acme.io", Role.DEVELOPER)
    now = int(time.time())
    valid = jwt.encode({"sub": "dev@acme.io", "tenant": "acme", "exp": now + 60}, secret, algorithm="HS256")
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=bearer(valid))).status_code == 200
    expired = jwt.encode({"sub": "dev@acme.io", "tenant": "acme", "exp": now - 120}, secret, algorithm="HS256")
    forged = jwt.encode({"sub": "dev@acme.io", "tenant": "acme", "exp": now + 60}, "x" * 64, algorithm="HS256")
    for token, reason in ((expired, "expired"), (forged, "signature")):
        openai = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(token))
        assert openai.status_code == 401 and reason in openai.json()["error"]["message"]
        anthropic = await client.post("/v1/messages", json=MESSAGES, headers=bearer(token))
        assert anthropic.status_code == 401 and anthropic.json()["error"]["type"] == "authentication_error"


async def test_cache_hit_costs_microseconds(database: Database, gateway_client: Callable[..., Any]) -> None:
    """A loose guard against regressions (the real figures come from bench/auth_bench.py):
    CPU time, which a busy machine does not inflate the way it inflates wall time."""
    import time

    from starlette.datastructures import Headers

    started = await gateway_client()
    secret, _ = await seed_key(database, "acme", Role.SERVICE)
    stage = started.gateway.pipeline.stages[0]
    headers = Headers(raw=[(b"authorization", f"Bearer {secret}".encode()), (b"content-type", b"application/json")])
    ctx = RequestContext(
        request_id="r", dialect="openai", endpoint="chat", body={}, model=MODEL, timing=Timing(), headers=headers
    )
    await stage.on_request(ctx)
    iterations = 20_000
    started = time.process_time()
    for _ in range(iterations):
        await stage.on_request(ctx)
    per_request_us = (time.process_time() - started) / iterations * 1e6
    assert per_request_us < 50, f"{per_request_us:.1f} us of CPU per cache hit"


async def test_model_listing_needs_a_caller(database: Database, gateway_client: Callable[..., Any]) -> None:
    client, _, _ = await gateway_client()
    secret, _ = await seed_key(database, "acme", Role.VIEWER)  # listing models needs no permission
    for path in ("/v1/models", f"/v1/models/{MODEL}"):
        refused = await client.get(path)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert (await client.get(path, headers=bearer(secret))).status_code == 200
    open_client, _, _ = await gateway_client(enabled=False)
    assert (await open_client.get("/v1/models")).status_code == 200
