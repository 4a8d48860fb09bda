"""The coder's model through the gateway pipeline, as the run's owner: a JSON-schema request capped
at the step's reservation, each call a ledger interaction with ``extra.agent_run``."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from bastion.agents.service import AgentRuns
from bastion.gateway.agent_runs import GatewayToolbox
from bastion.gateway.service import Gateway
from bastion.store.models import Interaction
from tests.agents.armfakes import FakeSandbox, RefusedFake, make_spec
from tests.sessions.support import seed_keys
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.harness import make_settings, running_gateway, wait_until

CHAT = "agent-chat"


def completion(content: str) -> bytes:
    body = {
        "id": "chatcmpl-agent",
        "object": "chat.completion",
        "created": 1,
        "model": CHAT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50},
    }
    return json.dumps(body).encode()


async def test_the_coder_calls_the_pipeline_as_the_owner_and_each_call_is_in_the_ledger(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    deployment = {"provider": "openai", "model": CHAT, "api_base": fake.openai_base, "api_key": "x"}
    settings = make_settings(
        f"sqlite:///{tmp_path / 'bastion.db'}",
        tmp_path / "data",
        models=[{"name": CHAT, "deployments": [deployment]}],
        ledger={"enabled": True, "flush_interval_s": 0.05},
        agents={"model": CHAT},
        jobs={"poll_interval_s": 0.05},
        auto_migrate=True,
    )
    fake.script(CHAT, [Behaviour.error_body(200, completion('{"files": {"sol.py": "x = 1"}}'))])
    sandbox = FakeSandbox()

    def with_sandbox(gateway: Gateway) -> None:
        agents = gateway.services.agents
        assert isinstance(agents, AgentRuns) and isinstance(agents.toolbox, GatewayToolbox)
        agents.toolbox.sandbox = (sandbox, make_spec, (RefusedFake,))

    async with running_gateway(settings, before_start=with_sandbox, timeout_s=30) as running:
        keys = await seed_keys(running.gateway.db)
        body = {"template": "code-until-tests-pass", "input": {"task": "write x"}, "wait": True, "seed": 3}
        answer = await running.client.post(
            "/v1/agents/runs", json=body, headers={"authorization": f"Bearer {keys['ann']}"}
        )
        run = answer.json()
        assert run["status"] == "succeeded", run
        assert run["spent"]["tokens"] == 50  # what the upstream reported, not the reservation

        sent = fake.requests(CHAT)[0].body
        assert sent["max_tokens"] == 2048  # the code step's reservation
        assert sent["response_format"]["type"] == "json_schema" and sent["seed"] == 3
        assert sandbox.spawned[0].files["sol.py"] == b"x = 1"

        async def recorded() -> list[Interaction] | None:
            async with running.gateway.db.session() as session:
                rows = list((await session.execute(select(Interaction))).scalars())
            return rows or None

        rows = await wait_until(recorded, timeout_s=10, what="the coder's call in the ledger")
        assert [row.extra and row.extra.get("agent_run") for row in rows] == [run["id"]]
        assert rows[0].key_id is not None  # the call ran as the run's owner (ann's key)
