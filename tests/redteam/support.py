"""The red-team suite's gateway: in process, auth on, the guard with its default policy, the ledger
on, and chat models whose deployments are scripted fake upstreams:

- ``leaky``: repeats its whole system prompt (canary, customer record) after "Sure.";
- ``refuser``: always refuses;
- ``flaky``: answers "ok" slowly (cancellation is observed while it runs).

Keys of tests/sessions/support.py (``acme``: ann and bob developers, svc (service), viewer;
``globex``: carl) plus an ``admin`` of acme.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bastion.auth.principal import Role
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.auth.support import seed_key
from tests.sessions.support import seed_keys
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.harness import make_settings, running_gateway, wait_until

REFUSAL = "I'm sorry, but I can't help with that request."
RUNS = "/v1/redteam/runs"


def _system_prompt(body: dict[str, Any]) -> str:
    return next((str(m["content"]) for m in body.get("messages", []) if m.get("role") == "system"), "")


def leaky(body: dict[str, Any]) -> str:
    return "Sure. " + _system_prompt(body).replace("\n", " ")


@dataclass
class RedteamEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    fake: FakeUpstream
    keys: dict[str, str] = field(default_factory=dict)
    #: The ASGI app (to serve it on a port for clients outside the event loop).
    app: Any = None

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(who), **kwargs)

    async def post(self, who: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return await self.client.post(path, headers=self.auth(who), **kwargs)

    async def start(self, who: str, **spec: Any) -> dict[str, Any]:
        response = await self.post(who, RUNS, spec)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def finished(self, who: str, run_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.get(who, f"{RUNS}/{run_id}")).json()
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None

        return await wait_until(done, timeout_s=60, what=f"red-team run {run_id}")

    async def run(self, who: str, **spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a run, wait for it; the run and its report."""
        run = await self.finished(who, (await self.start(who, **spec))["id"])
        assert run["status"] == "succeeded", run
        report = await self.get(who, f"{RUNS}/{run['id']}/report")
        assert report.status_code == 200, report.text
        return run, report.json()


def _deployment(fake: FakeUpstream, upstream: str) -> dict[str, Any]:
    return {"provider": "openai", "model": upstream, "api_base": fake.openai_base, "api_key": "test-key"}


@contextlib.asynccontextmanager
async def redteam_gateway(
    database: Database,
    database_url: str,
    tmp_path: Path,
    fake: FakeUpstream,
    extra_models: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> AsyncIterator[RedteamEnv]:
    """The suite's gateway; ``extra_models`` are added to the scripted ones, ``overrides`` are
    settings sections (``local={...}``)."""
    fake.default("rt-leaky", Behaviour.replying(leaky))
    fake.default("rt-refuser", Behaviour.replying(lambda body: REFUSAL))
    fake.default("rt-slow", "ok:0.3")
    models = [
        {"name": name, "deployments": [_deployment(fake, f"rt-{upstream}")]}
        for name, upstream in (("leaky", "leaky"), ("refuser", "refuser"), ("slow", "slow"))
    ]
    models += extra_models or []
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=models,
        router={"retries": 0},
        # The run's system prompt reaches the guard as the request's own: its leak check covers it.
        guard={"canary_for_client_prompts": True},
        ledger={"enabled": True, "flush_interval_s": 0.01},
        jobs={"poll_interval_s": 0.05, "cancel_poll_s": 0.05, "heartbeat_interval_s": 0.5},
        **overrides,
    )
    keys = await seed_keys(database)
    keys["admin"], _ = await seed_key(database, "acme", Role.ADMIN)
    async with running_gateway(settings, timeout_s=120) as running:
        yield RedteamEnv(running.gateway, running.client, database, fake, keys, running.app)
