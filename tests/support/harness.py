"""The one in-process test harness: settings with every optional subsystem off, a running gateway
behind an ASGI client, and bounded waiting from async tests.

    settings = make_settings(database_url, tmp_path / "data", ledger={"enabled": True})
    async with running_gateway(settings) as env:
        response = await env.client.post("/v1/chat/completions", json=...)
        await wait_until(lambda: rows(env.gateway.db), what="the ledger row")

Suites add only what is theirs (keys, prompts, fake upstream answers) on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx

from bastion.api.app import create_app
from bastion.config.settings import Settings
from bastion.gateway.compose import build_gateway
from bastion.gateway.service import Gateway
from bastion.gateway.stage import Stage

T = TypeVar("T")

#: Subsystems a test turns on explicitly: the embedded models, limits, budgets and the ledger.
_OFF: dict[str, Any] = {
    "local": {"enabled": False, "embeddings_enabled": False},
    "limits": {"enabled": False},
    "budgets": {"enabled": False},
    "ledger": {"enabled": False},
    "auto_migrate": False,
}


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an in-process test gateway. An override replaces its section whole: a test that
    configures a subsystem gets it with the product's defaults (on, for the ones listed above)."""
    return Settings.model_validate({"database_url": database_url, "data_dir": str(data_dir), **_OFF, **overrides})


@dataclass
class RunningGateway:
    gateway: Gateway
    client: httpx.AsyncClient
    #: The ASGI app, for clients of other HTTP libraries (the SDKs' ``httpx2``).
    app: Any = None


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings,
    *,
    stages: list[Stage] | None = None,
    start: bool = True,
    before_start: Callable[[Gateway], None] | None = None,
    timeout_s: float = 60.0,
) -> AsyncIterator[RunningGateway]:
    """The app of ``settings`` in process, started (unless ``start`` is false), with a client.

    ``before_start`` may adjust services (a test clock, a recording canary) before they start."""
    gateway = build_gateway(settings, stages=stages)
    if before_start is not None:
        before_start(gateway)
    app = create_app(settings, gateway)
    if start:
        await gateway.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test", timeout=timeout_s) as client:
            yield RunningGateway(gateway, client, app)
    finally:
        await gateway.stop()


def openai_sdk(client: httpx.AsyncClient, api_key: str) -> Any:
    """The unmodified async OpenAI SDK over an in-process gateway's ASGI client (no retries)."""
    import openai

    return openai.AsyncOpenAI(
        base_url="http://bastion.test/v1",
        api_key=api_key,
        http_client=client,  # type: ignore[arg-type]  # the SDK types its own httpx fork; httpx's client works
        max_retries=0,
    )


def anthropic_sdk(app: Any, api_key: str) -> Any:
    """The unmodified async Anthropic SDK over an in-process gateway's app. It brings its own HTTP
    library (httpx2), with an ASGI transport of its own."""
    import anthropic
    import httpx2

    transport = httpx2.ASGITransport(app=app)
    return anthropic.AsyncAnthropic(
        base_url="http://bastion.test",
        api_key=api_key,
        http_client=httpx2.AsyncClient(transport=transport, base_url="http://bastion.test", timeout=30),
        max_retries=0,
    )


@overload
async def wait_until(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0, what: str = "", interval_s: float = 0.02
) -> T: ...


@overload
async def wait_until(
    probe: Callable[[], T | None], timeout_s: float = 10.0, what: str = "", interval_s: float = 0.02
) -> T: ...


async def wait_until(
    probe: Callable[[], Awaitable[T | None] | T | None],
    timeout_s: float = 10.0,
    what: str = "",
    interval_s: float = 0.02,
) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy and return that; fail
    after ``timeout_s``. How async tests wait for background work, never with a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = probe()
        value = await outcome if isinstance(outcome, Awaitable) else outcome
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s{': ' + what if what else ''}")
        await asyncio.sleep(interval_s)
