"""The unmodified OpenAI Agents SDK, with its default model and model settings, runs an agent with
a function tool through Bastion's /v1/responses to a tool-calling upstream (tracing off: no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agents
import openai
from agents import Agent, RunConfig, Runner, function_tool
from agents.models.default_models import get_default_model
from agents.models.openai_provider import OpenAIProvider

from bastion.config.loader import LOCAL_CHAT_ALIASES, LOCAL_CHAT_MODEL, load_settings
from bastion.store.db import Database
from tests.responses.support import deployment
from tests.sessions.support import seed_keys
from tests.support.fake_upstream import FakeUpstream, tool_answer
from tests.support.harness import make_settings, running_gateway

AGENT_UPSTREAM = "agents-upstream"


def test_the_sdk_default_model_reaches_the_local_model_in_the_default_config(tmp_path: Path) -> None:
    assert get_default_model() in LOCAL_CHAT_ALIASES
    settings = load_settings(None, environ={"BASTION_DATA_DIR": str(tmp_path)})
    (local,) = [m for m in settings.models if m.name == LOCAL_CHAT_MODEL]
    assert get_default_model() in local.aliases


async def test_agent_with_a_function_tool(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    agents.set_tracing_disabled(True)
    fake.default(AGENT_UPSTREAM, "tools")
    seen: list[str] = []

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look up an order's status."""
        seen.append(order_id)
        return f"order {order_id} shipped"

    # The alias is the SDK's own default model name, served here by the fake upstream.
    settings = make_settings(
        database_url,
        tmp_path / "data",
        models=[{"name": get_default_model(), "deployments": [deployment(fake, AGENT_UPSTREAM)]}],
        router={"retries": 0},
    )
    keys = await seed_keys(database)
    async with running_gateway(settings, timeout_s=30) as env:
        client = openai.AsyncOpenAI(
            base_url="http://bastion.test/v1",
            api_key=keys["ann"],
            http_client=env.client,  # type: ignore[arg-type]  # the SDK types its own httpx fork; httpx's client works
            max_retries=0,
        )
        agent = Agent(name="support", instructions="Help with orders.", tools=[lookup_order])
        config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
        result = await Runner.run(agent, "Where is order 7?", run_config=config)

    assert seen == ["test"]
    assert result.final_output == tool_answer("order test shipped")
    first, second = fake.requests(AGENT_UPSTREAM)
    assert first.body["messages"][0] == {"role": "system", "content": "Help with orders."}
    assert first.body["tools"][0]["function"]["name"] == "lookup_order"
    tool_message: dict[str, Any] = second.body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "order test shipped"
