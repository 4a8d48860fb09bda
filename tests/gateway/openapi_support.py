"""An in-process gateway for the OpenAPI tests (auth on, SQLite, the fake upstream behind it, a
platform admin key), and a checker that holds answers against the served OpenAPI document."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis

from bastion.auth.principal import Role
from bastion.config.settings import Settings
from bastion.gateway.service import Gateway
from tests.auth.support import seed_key
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway

CHAT, CLAUDE, EMBED = "oa-chat", "oa-claude", "oa-embed"


def openapi_settings(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    def deployment(provider: str, name: str, base: str) -> dict[str, Any]:
        return {"provider": provider, "model": name, "api_base": base, "api_key": "x"}

    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'bastion.db'}",
        "data_dir": str(tmp_path / "data"),
        "models": [
            {"name": CHAT, "deployments": [deployment("openai", CHAT, fake.openai_base)]},
            {"name": CLAUDE, "deployments": [deployment("anthropic", CLAUDE, fake.base_url)]},
            {"name": EMBED, "kind": "embedding", "deployments": [deployment("openai", EMBED, fake.openai_base)]},
        ],
        "router": {"retries": 0},
        "local": {"enabled": False, "embeddings_enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "ledger": {"flush_interval_s": 0.05},
        "logging": {"level": "warning"},
        # The insights event stream ends quickly, so the in-process client gets its whole body.
        "insights": {"stream": {"max_connection_s": 0.3}},
    }
    for section, value in overrides.items():
        base[section] = {**base[section], **value} if isinstance(base.get(section), dict) else value
    return Settings.model_validate(base)


@dataclass
class Running:
    gateway: Gateway
    client: httpx.AsyncClient
    #: Authorization headers of a platform admin key of tenant "ops".
    admin: dict[str, str]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    """The app with its lifespan (start-up and shut-down) and a client on it."""
    async with running_gateway(settings, timeout_s=30) as env:
        secret, _ = await seed_key(env.gateway.db, "ops", Role.ADMIN, platform=True)
        yield Running(env.gateway, env.client, {"authorization": f"Bearer {secret}"})


def route_template(path: str) -> str:
    """``/v1/models/{model:path}`` -> ``/v1/models/{model}``: Starlette's converters are not OpenAPI's."""
    return "/".join(part.split(":", 1)[0] + "}" if ":" in part else part for part in path.split("/"))


@dataclass
class DocumentChecker:
    """Holds each answer against the document: a documented status and media type, a body (or each
    server-sent event) matching the documented schema. Remembers which operations answered 2xx."""

    document: dict[str, Any]
    succeeded: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.schema = schemathesis.openapi.from_dict(self.document)

    def check(self, template: str, response: httpx.Response) -> httpx.Response:
        method = response.request.method
        label = f"{method} {template}"
        responses = self.document["paths"][template][method.lower()]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{label}: undocumented status {status}: {response.text[:300]}"
        media = response.headers.get("content-type", "").split(";")[0].strip()
        assert media in responses[status].get("content", {}), f"{label} {status}: undocumented {media!r}"
        self.schema[template][method].validate_response(response)
        if response.is_success:
            self.succeeded.add(label)
        return response

    def operations(self) -> set[str]:
        return {f"{method.upper()} {path}" for path, item in self.document["paths"].items() for method in item}


@dataclass
class Walk:
    """Calls the API as the admin (or anonymously) and checks each answer against the document:
    ``await walk("GET", "/api/v1/admin/users/{user_id}", user_id=...)`` fills the path's template."""

    client: httpx.AsyncClient
    checker: DocumentChecker
    admin: dict[str, str]

    async def __call__(
        self, method: str, template: str, *, anonymous: bool = False, query: str = "", **kwargs: Any
    ) -> httpx.Response:
        names = {name: kwargs.pop(name) for name in list(kwargs) if "{" + name + "}" in template}
        path = template.format(**names) + query
        headers = {**({} if anonymous else self.admin), **kwargs.pop("headers", {})}
        return self.checker.check(template, await self.client.request(method, path, headers=headers, **kwargs))
