"""Browsers and LiteLLM users: CORS on every route (the fast lane included) when configured, off
by default; and a LiteLLM ``general_settings.master_key`` working as a platform-admin credential."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.config.loader import load_settings
from bastion.config.settings import Settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import write_config
from tests.support.harness import make_settings, running_gateway
from tests.support.openai_spec import validate

APP_ORIGIN = "https://app.example"
MASTER_KEY = "sk-litellm-master-1234"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bastion.db'}"  # migrated at start (auto_migrate)


def _settings(database_url: str, tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    deployment = {"provider": "openai", "model": "fake-ok", "api_base": fake.openai_base, "api_key": "x"}
    return make_settings(
        database_url,
        tmp_path / "data",
        auto_migrate=True,
        models=[{"name": "browser-model", "deployments": [deployment]}],
        **overrides,
    )


def _preflight(path: str, origin: str = APP_ORIGIN) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    }


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/api/v1/admin/keys"])
async def test_preflight_is_answered_for_an_allowed_origin(
    db_url: str, tmp_path: Path, fake: FakeUpstream, path: str
) -> None:
    settings = _settings(db_url, tmp_path, fake, server={"cors": {"allowed_origins": [APP_ORIGIN]}})
    async with running_gateway(settings) as env:
        allowed = await env.client.options(path, headers=_preflight(path))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "x-stainless-os" in allowed.headers["access-control-allow-headers"].lower()
        refused = await env.client.options(path, headers=_preflight(path, "https://evil.example"))
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


async def test_a_cross_origin_post_gets_the_headers_a_browser_needs(
    db_url: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = _settings(
        db_url,
        tmp_path,
        fake,
        server={"cors": {"allowed_origins": [APP_ORIGIN]}},
        auth={"master_key": MASTER_KEY},
    )
    body = {"model": "browser-model", "messages": [{"role": "user", "content": "Hi"}]}
    async with running_gateway(settings) as env:
        answer = await env.client.post(
            "/v1/chat/completions", json=body, headers={"origin": APP_ORIGIN, "authorization": f"Bearer {MASTER_KEY}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "x-request-id" in answer.headers["access-control-expose-headers"]
        # An error must be readable by the page too, or the browser reports only "CORS error".
        refused = await env.client.post("/v1/chat/completions", json=body, headers={"origin": APP_ORIGIN})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP_ORIGIN
        validate("ErrorResponse", refused.json())
        # A page of another origin is not let in.
        other = await env.client.post(
            "/v1/chat/completions", json=body, headers={"origin": "https://evil.example", "x-api-key": MASTER_KEY}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_cors_is_off_by_default(db_url: str, tmp_path: Path, fake: FakeUpstream) -> None:
    async with running_gateway(_settings(db_url, tmp_path, fake)) as env:
        preflight = await env.client.options("/v1/chat/completions", headers=_preflight("/v1/chat/completions"))
        assert "access-control-allow-origin" not in preflight.headers
        post = await env.client.post("/v1/chat/completions", json={}, headers={"origin": APP_ORIGIN})
        assert "access-control-allow-origin" not in post.headers


async def test_the_litellm_master_key_is_a_platform_admin_credential(
    db_url: str, tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER_KEY)
    litellm = write_config(
        tmp_path / "litellm.yaml",
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "openai/fake-ok", "api_base": fake.openai_base}}
            ],
            "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        },
    )
    loaded = load_settings(litellm, environ={})
    assert loaded.auth.master_key is not None
    assert loaded.auth.master_key.get_secret_value() == "os.environ/LITELLM_MASTER_KEY"
    settings = _settings(db_url, tmp_path, fake, auth=loaded.auth.model_dump())
    async with running_gateway(settings) as env:
        # Kept only as a hash: the authenticator holds no copy of the key.
        assert MASTER_KEY not in repr(vars(env.gateway.services.authenticator))
        for header in ({"authorization": f"Bearer {MASTER_KEY}"}, {"x-api-key": MASTER_KEY}):
            me = await env.client.get("/api/v1/admin/me", headers=header)
            assert me.status_code == 200, me.text
            assert me.json()["role"] == "admin"
        # Admin rights: it can make the gateway's first key.
        created = await env.client.post(
            "/api/v1/admin/keys", headers={"x-api-key": MASTER_KEY}, json={"name": "first", "role": "service"}
        )
        assert created.status_code in (200, 201), created.text
        wrong = await env.client.get("/api/v1/admin/me", headers={"x-api-key": MASTER_KEY + "x"})
        assert wrong.status_code == 401
