"""The Responses API suite's gateway: in process, auth on, two tenants (``acme``: ann and svc;
``globex``: carl), models on the fake upstream, a movable clock on the response store.

    async def test_x(responses_env: ResponsesEnv) -> None:
        client = responses_env.openai("ann")            # the unmodified OpenAI SDK, over ASGI
        response = await client.responses.create(model=MODEL, input="hi")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from bastion.gateway.service import Gateway
from bastion.responses.store import ResponseStore
from bastion.store.db import Database
from tests.sessions.support import MovableClock, seed_keys
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import make_settings, openai_sdk, running_gateway
from tests.support.openai_spec import validate

#: Alias -> upstream model name; the fake answers per upstream model (``fake.default``).
MODEL = "resp-model"
UPSTREAM = "resp-upstream"
TOOLS_MODEL = "resp-tools"
TOOLS_UPSTREAM = "resp-tools-upstream"

#: The spec's schema for each stream event type (validated one by one).
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
}


def deployment(fake: FakeUpstream, upstream: str) -> dict[str, Any]:
    return {"provider": "openai", "model": upstream, "api_base": fake.openai_base, "api_key": "test-key"}


@dataclass
class ResponsesEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    clock: MovableClock
    fake: FakeUpstream
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> ResponseStore:
        return self.gateway.services.responses

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    def openai(self, who: str = "ann") -> openai.AsyncOpenAI:
        sdk: openai.AsyncOpenAI = openai_sdk(self.client, self.keys[who])
        return sdk

    async def create(self, who: str = "ann", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/responses", json={"model": MODEL, **body}, headers=self.auth(who))

    async def stream_events(self, who: str = "ann", **body: Any) -> list[dict[str, Any]]:
        """The SSE events of a streamed create, each checked against the spec's schema for its type."""
        response = await self.create(who, stream=True, **body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for block in response.text.split("\n\n"):
            if not block.strip():
                continue
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            event = orjson.loads(lines["data"])
            assert lines["event"] == event["type"]
            validate(EVENT_SCHEMAS[event["type"]], event)
            validate("ResponseStreamEvent", event)
            events.append(event)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        return events


@pytest.fixture
async def responses_env(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[ResponsesEnv]:
    fake.default(TOOLS_UPSTREAM, "tools")
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=[
            {"name": MODEL, "deployments": [deployment(fake, UPSTREAM)]},
            {"name": TOOLS_MODEL, "deployments": [deployment(fake, TOOLS_UPSTREAM)]},
        ],
        router={"retries": 0},
    )
    keys = await seed_keys(database)
    clock = MovableClock()

    def use_clock(gateway: Gateway) -> None:
        gateway.services.responses.clock = clock

    async with running_gateway(settings, before_start=use_clock, timeout_s=30) as running:
        yield ResponsesEnv(running.gateway, running.client, database, clock, fake, keys)
