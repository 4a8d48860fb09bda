"""The agent runs API end to end (SQLite and PostgreSQL): runs are jobs, stored with their trace;
waiting, 202 and SSE; the trace verifies and an edited record is detected; budgets stop a looping
run after exactly max_iterations; cancel kills the sandboxed process; tenants and roles."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from bastion.agents.models import AgentRun
from bastion.agents.service import AgentRuns
from bastion.auth.principal import Role
from bastion.gateway.agent_runs import GatewayToolbox
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from tests.agents.armfakes import Chooser, FakeModel, FakeResult, FakeSandbox, RefusedFake, make_spec
from tests.auth.support import seed_key
from tests.sessions.support import seed_keys
from tests.support.db import *  # noqa: F403  (database, database_url)
from tests.support.harness import make_settings, running_gateway, wait_until

RUNS = "/v1/agents/runs"
CODE = "code-until-tests-pass"


@dataclass
class Env:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    sandbox: FakeSandbox
    model: FakeModel
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(who), **kwargs)

    async def post(self, who: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, headers=self.auth(who), json=body, **kwargs)

    async def finished(self, who: str, run_id: str) -> dict[str, Any]:
        async def ended() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.get(who, f"{RUNS}/{run_id}")).json()
            return body if body["finished_at"] is not None else None

        return await wait_until(ended, timeout_s=30, what=f"agent run {run_id}")


@contextlib.asynccontextmanager
async def agents_gateway(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    agents = {"tenant_limits": {"globex": {"max_iterations": 5}}}
    settings = make_settings(database_url, tmp_path / "data", agents=agents, jobs={"poll_interval_s": 0.05})
    keys = await seed_keys(database)
    keys["admin"], _ = await seed_key(database, "acme", Role.ADMIN)
    sandbox = FakeSandbox()
    model = FakeModel([{"files": {"sol.py": "def f(): return 1"}}])

    def fakes(gateway: Gateway) -> None:
        agent_runs = gateway.services.agents
        assert isinstance(agent_runs, AgentRuns) and isinstance(agent_runs.toolbox, GatewayToolbox)
        agent_runs.toolbox.sandbox = (sandbox, make_spec, (RefusedFake,))
        agent_runs.toolbox.model_override = model
        agent_runs.toolbox.chooser = None  # only templates, unless a test installs a planner

    async with running_gateway(settings, before_start=fakes, timeout_s=30) as running:
        yield Env(running.gateway, running.client, database, sandbox, model, keys)


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with agents_gateway(database, database_url, tmp_path) as running:
        yield running


async def test_a_run_waits_for_its_end_and_its_trace_verifies_until_a_record_is_edited(env: Env) -> None:
    body = {"template": CODE, "input": {"task": "write f", "tests": "def test(): pass"}, "wait": True, "seed": 7}
    response = await env.post("ann", RUNS, body)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["object"] == "agent.run" and run["status"] == "succeeded", run
    assert run["output"]["passed"] is True and run["spent"]["tool_calls"] == 1
    assert run["iterations"] == 4 and run["trace_hash"]

    trace = (await env.get("viewer", f"{RUNS}/{run['id']}/trace")).json()  # a viewer reads
    assert trace["verified"] is True and trace["trace_hash"] == run["trace_hash"]
    started = [e for e in trace["events"] if e["kind"] == "step_started"]
    assert [e["step_id"] for e in started] == ["guard-task", "code", "execute", "judge"]
    assert all(len(e["token_jti"]) == 32 and e["remaining"]["iterations"] >= 0 for e in started)
    assert trace["events"][-1]["kind"] == "run_ended"

    edited = list(trace["events"])
    edited[3] = {**edited[3], "attempt": 2}
    async with env.db.transaction() as session:
        await session.execute(update(AgentRun).where(AgentRun.id == run["id"]).values(trace=edited))
    tampered = (await env.get("ann", f"{RUNS}/{run['id']}/trace")).json()
    assert tampered["verified"] is False and tampered["first_broken_link"] == 3


async def test_a_looping_run_stops_after_exactly_max_iterations_with_its_partial_result(env: Env) -> None:
    env.sandbox.results = [FakeResult(1, b"1 failed")]  # the judge never passes
    budget = {"max_iterations": 6, "max_tokens": 20000, "max_cost_usd": 1, "max_tool_calls": 8}
    response = await env.post("ann", RUNS, {"template": CODE, "input": {"task": "t"}, "budget": budget, "wait": True})
    run = response.json()
    assert run["status"] == "budget_exhausted" and run["reason"].startswith("iterations: 6 of 6 used"), run
    assert run["iterations"] == 6 and run["outputs"]["judge"]["passed"] is False  # the partial result
    assert run["spent"]["tokens"] <= budget["max_tokens"] + 2048  # at most one reserved call over
    trace = (await env.get("ann", f"{RUNS}/{run['id']}/trace")).json()
    assert sum(e["kind"] == "step_started" for e in trace["events"]) == 6 and trace["verified"]


async def test_the_tenants_plan_policy_caps_the_budget(env: Env) -> None:
    response = await env.post(
        "carl", RUNS, {"template": CODE, "input": {"task": "t"}, "budget": {"max_iterations": 99}}
    )
    assert response.status_code == 202, response.text
    assert response.json()["budget"]["max_iterations"] == 5


async def test_cancel_kills_the_sandboxed_process_and_ends_the_run_cancelled(env: Env) -> None:
    env.sandbox.hang = True
    queued = await env.post("ann", RUNS, {"template": CODE, "input": {"task": "t"}})
    # The in-process worker may pick the job up before the answer is written.
    assert queued.status_code == 202 and queued.json()["status"] in ("queued", "running"), queued.text
    run_id = queued.json()["id"]
    await wait_until(lambda: env.sandbox.spawned or None, timeout_s=30, what="the sandboxed command")
    assert (await env.post("viewer", f"{RUNS}/{run_id}/cancel")).status_code == 403
    assert (await env.post("carl", f"{RUNS}/{run_id}/cancel")).status_code == 404
    assert (await env.post("bob", f"{RUNS}/{run_id}/cancel")).status_code == 200
    run = await env.finished("ann", run_id)
    assert run["status"] == "cancelled" and env.sandbox.killed_by_cancel
    assert "execute" not in (run["outputs"] or {})
    assert (await env.post("ann", f"{RUNS}/{run_id}/cancel")).status_code == 409


async def test_a_streamed_run_sends_each_trace_event_then_done_and_resumes_after_last_event_id(env: Env) -> None:
    body = {"template": CODE, "input": {"task": "t"}, "stream": True}
    async with env.client.stream("POST", RUNS, headers=env.auth("ann"), json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([chunk async for chunk in response.aiter_text()])
    blocks = [b for b in text.split("\n\n") if b.strip()]
    names = [line.removeprefix("event: ") for b in blocks for line in b.splitlines() if line.startswith("event: ")]
    assert names[-2:] == ["run_ended", "done"] and names.count("step_started") == 4
    ids = [int(line[4:]) for b in blocks for line in b.splitlines() if line.startswith("id: ")]
    assert ids == list(range(len(ids)))
    run_id = next(line for line in blocks[-1].splitlines() if line.startswith("data: "))
    run_id = httpx.Response(200, content=run_id[6:]).json()["id"]
    headers = {**env.auth("ann"), "last-event-id": str(ids[-3])}
    async with env.client.stream("GET", f"{RUNS}/{run_id}/events", headers=headers) as resumed:
        rest = "".join([chunk async for chunk in resumed.aiter_text()])
    assert [int(line[4:]) for line in rest.splitlines() if line.startswith("id: ")] == ids[-2:]


async def test_tenants_roles_and_bad_requests(env: Env) -> None:
    done = (await env.post("ann", RUNS, {"template": CODE, "input": {"task": "t"}, "wait": True})).json()
    assert (await env.get("carl", f"{RUNS}/{done['id']}")).status_code == 404
    assert (await env.get("carl", f"{RUNS}/{done['id']}/trace")).status_code == 404
    assert (await env.get("ann", f"{RUNS}/run_nothing")).status_code == 404
    assert (await env.post("viewer", RUNS, {"template": CODE, "input": {"task": "t"}})).status_code == 403
    templates = (await env.get("viewer", "/v1/agents/templates")).json()["data"]
    assert {t["name"] for t in templates} == {"answer-with-citations", CODE}
    sandbox = (await env.get("viewer", "/v1/agents/sandbox")).json()
    assert sandbox["object"] == "agent.sandbox" and "available" in sandbox
    bad = [
        ({"template": "nope", "input": {}}, "template"),
        ({"template": CODE, "input": {}}, "input"),
        ({"template": CODE, "task": "both"}, "task"),
        ({"input": {}}, "template"),
        ({"template": CODE, "input": {"task": "t"}, "budget": {"max_iterations": 0}}, "budget"),
        ({"template": CODE, "input": {"task": "t"}, "extra": 1}, "extra"),
        ({"task": "write code", "planner": "delegate"}, "planner"),
        ([], None),
    ]
    for body, param in bad:
        response = await env.post("ann", RUNS, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, (body, response.text)


async def test_a_run_past_its_wall_time_ends_within_a_second_of_it(env: Env) -> None:
    env.sandbox.hang = True  # the command never ends on its own
    budget = {"max_wall_s": 0.5, "max_iterations": 12, "max_tokens": 20000, "max_cost_usd": 1, "max_tool_calls": 8}
    body = {"template": CODE, "input": {"task": "t"}, "budget": budget, "wait": True}
    run = (await env.post("ann", RUNS, body)).json()
    assert run["status"] == "budget_exhausted" and run["reason"] == "wall time: 0.5 s", run
    trace = (await env.get("ann", f"{RUNS}/{run['id']}/trace")).json()
    ended = trace["events"][-1]
    assert ended["kind"] == "run_ended" and ended["at_s"] <= 0.5 + 1.0
    assert run["outputs"]["code"] is not None and "execute" not in run["outputs"]  # the partial result


async def test_a_task_runs_the_plan_a_planner_mode_chose(env: Env) -> None:
    agent_runs = env.gateway.services.agents
    assert isinstance(agent_runs, AgentRuns) and isinstance(agent_runs.toolbox, GatewayToolbox)
    chooser = Chooser()
    agent_runs.toolbox.chooser = chooser
    body = {"task": "write a function", "planner": "constrained", "wait": True}
    run = (await env.post("ann", RUNS, body)).json()
    assert run["status"] == "succeeded" and run["template"] is None, run
    assert run["task"] == "write a function" and run["planner_reason"] == "constrained: template chosen"
    assert chooser.calls[0]["mode"] == "constrained" and chooser.calls[0]["model"] is env.model
    assert chooser.calls[0]["policy"].max_budget.max_iterations == 50  # the tenant's policy
