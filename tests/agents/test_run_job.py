"""The ``agent_run`` job handler over the run store (SQLite and PostgreSQL): a crashed attempt is
run again from the start (the trace reset), the last failing attempt marks the run failed, a run
cancelled while queued is not started, the trace is saved as it grows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bastion.agents.arms import ArmKind
from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.capability import CapabilityIssuer, CapabilityVerifier, MemoryUseStore
from bastion.agents.runner import MAX_ATTEMPTS, AgentRunJob, AgentRunner, RunFinished, RunTools
from bastion.agents.store import AgentRunStore, NewRun
from bastion.agents.templates import get_template
from bastion.auth.principal import Identity
from bastion.gateway.agent_runs import trace_exporter
from bastion.jobs.context import JobContext
from bastion.store.db import Database
from tests.agents.armfakes import Chooser, FakeModel, FakeSandbox, RefusedFake, make_spec
from tests.knowledge.conftest import add_tenant
from tests.observability.support import in_memory
from tests.support.db import *  # noqa: F403  (database, database_url)
from tests.support.harness import wait_until

SECRET = b"j" * 32


@dataclass
class FakeContext:
    payload: dict[str, Any]
    attempt: int = 1
    cancel_requested: bool = False

    def progress(self, done: int, total: int | None = None) -> None:
        pass


class Tools:
    """Fails the first ``crashes`` runs (a worker dying mid-run stands behind such an attempt)."""

    def __init__(self, crashes: int, sandbox: FakeSandbox) -> None:
        self.crashes = crashes
        self.sandbox = sandbox
        self.chooser = Chooser()

    async def tools(self, owner: Identity, run_id: str) -> RunTools:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("worker lost")
        model = FakeModel([{"files": {"a.py": "x"}}])
        return RunTools(
            ArmGuard(),
            model=model,
            sandbox=self.sandbox,
            make_spec=make_spec,
            refused=(RefusedFake,),
            chooser=self.chooser,
        )

    def available_arms(self) -> frozenset[ArmKind]:
        return frozenset(ArmKind)

    def plans_tasks(self) -> bool:
        return True


async def setup(
    database: Database, crashes: int, task: str | None = None, on_finished: RunFinished | None = None
) -> tuple[AgentRunStore, AgentRunJob, str, FakeSandbox]:
    tenant = await add_tenant(database, "acme")
    store = AgentRunStore(database)
    plan = get_template("code-until-tests-pass")
    view = await store.add(
        NewRun(
            owner=Identity(tenant, "api_key", key_id="k1"),
            template=plan.name,
            planner="constrained" if task else "template",
            plan={} if task else plan.model_dump(mode="json", exclude_none=True),
            input={} if task else {"task": "t"},
            budget=plan.budget.model_dump(),
            grants={"executables": ["python3"], "paths": ["."]},
            task=task,
        )
    )
    sandbox = FakeSandbox()
    verifier = CapabilityVerifier(SECRET, MemoryUseStore())
    tools = Tools(crashes, sandbox)
    runner = AgentRunner(store, tools, CapabilityIssuer(SECRET), verifier, on_finished=on_finished)
    return store, AgentRunJob(runner), view.id, sandbox


def context(run_id: str, attempt: int = 1) -> JobContext:
    return cast(JobContext, FakeContext({"run_id": run_id}, attempt))


async def test_a_crashed_attempt_is_run_again_from_the_start(database: Database) -> None:
    store, job, run_id, sandbox = await setup(database, crashes=1)
    with pytest.raises(RuntimeError):
        await job.run(context(run_id, attempt=1))
    assert (await store.load(run_id)).status == "running"  # type: ignore[union-attr]
    result = await job.run(context(run_id, attempt=2))
    assert result["status"] == "succeeded"
    view = await store.load(run_id)
    assert view is not None and view.status == "succeeded" and view.trace[-1]["kind"] == "run_ended"
    assert sum(e["kind"] == "step_started" for e in view.trace) == 4  # one run's trace, not two
    assert len(view.links) == len(view.trace) and view.trace_hash == view.links[-1]
    assert len(sandbox.spawned) == 1


async def test_the_last_failing_attempt_marks_the_run_failed(database: Database) -> None:
    store, job, run_id, _ = await setup(database, crashes=MAX_ATTEMPTS)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with pytest.raises(RuntimeError):
            await job.run(context(run_id, attempt))
    view = await store.load(run_id)
    assert view is not None and view.status == "failed" and view.reason == "RuntimeError: worker lost"


async def test_a_run_ended_before_its_job_started_is_not_run(database: Database) -> None:
    store, job, run_id, sandbox = await setup(database, crashes=0)
    assert await store.end(run_id, "cancelled", "cancelled by the owner")
    assert (await job.run(context(run_id)))["status"] == "cancelled"
    assert sandbox.spawned == []


async def test_the_trace_is_saved_while_the_run_goes(database: Database) -> None:
    store, job, run_id, sandbox = await setup(database, crashes=0)
    sandbox.hang = True
    task = asyncio.create_task(job.run(context(run_id)))

    async def saved_up_to_execute() -> bool:
        view = await store.load(run_id)
        return view is not None and any(e.get("step_id") == "execute" for e in view.trace)

    await wait_until(saved_up_to_execute, timeout_s=10, what="the trace saved up to the execute step")
    running = await store.load(run_id)
    assert running is not None and running.status == "running" and running.links
    task.cancel()  # the worker stops (SIGTERM): the job goes back to the queue, the run stays open
    with pytest.raises(asyncio.CancelledError):
        await task
    view = await store.load(run_id)
    assert view is not None and view.status == "running"
    sandbox.hang = False
    again = await job.run(context(run_id, attempt=1))  # the next worker starts the run over
    assert again["status"] == "succeeded"
    view = await store.load(run_id)
    assert view is not None and sum(e["kind"] == "run_ended" for e in view.trace) == 1


async def test_a_cancelled_job_ends_its_run_cancelled(database: Database) -> None:
    store, job, run_id, sandbox = await setup(database, crashes=0)
    sandbox.hang = True
    ctx = FakeContext({"run_id": run_id})
    task = asyncio.create_task(job.run(cast(JobContext, ctx)))
    await wait_until(lambda: sandbox.spawned or None, timeout_s=10, what="the sandboxed command")
    ctx.cancel_requested = True  # what the worker sets on a cancel request
    result = await task
    assert result["status"] == "cancelled" and sandbox.killed_by_cancel
    view = await store.load(run_id)
    assert view is not None and view.status == "cancelled" and view.trace[-1]["kind"] == "run_ended"


async def test_a_task_runs_the_plan_its_planner_mode_chose_charged_with_the_planners_call(database: Database) -> None:
    store, job, run_id, sandbox = await setup(database, crashes=0, task="write a function")
    assert (await job.run(context(run_id)))["status"] == "succeeded"
    view = await store.load(run_id)
    assert view is not None and view.plan["name"] == "code-until-tests-pass"
    assert view.planner_reason == "constrained: template chosen" and view.input == {"task": "write a function"}
    ended = view.trace[-1]
    assert ended["kind"] == "run_ended" and ended["status"] == "succeeded"
    checks = [e for e in view.trace if e["kind"] == "budget_check"]
    assert checks[0]["remaining"]["tokens"] == 20000 - 300  # the planner's call was charged first
    assert len(sandbox.spawned) == 1


async def test_a_finished_runs_trace_is_exported_as_spans_when_the_export_is_on(database: Database) -> None:
    captured = in_memory()
    services = cast(Any, SimpleNamespace(otel=captured.exporter))
    store, job, run_id, _ = await setup(database, crashes=0, on_finished=trace_exporter(services))
    assert (await job.run(context(run_id)))["status"] == "succeeded"
    await captured.exporter.start()
    try:
        await asyncio.to_thread(captured.exporter.flush)
    finally:
        await captured.exporter.stop()
    spans = list(captured.spans.get_finished_spans())
    (run,) = [span for span in spans if span.name == "invoke_agent code-until-tests-pass"]
    attributes = dict(run.attributes or {})
    assert attributes["bastion.agent.run.id"] == run_id and attributes["bastion.agent.status"] == "succeeded"
    view = await store.load(run_id)
    assert view is not None
    steps = [span for span in spans if span.name.startswith("step ")]
    assert len(steps) == sum(event["kind"] == "step_started" for event in view.trace) == 4
    assert all(span.parent is not None and span.parent.span_id == run.context.span_id for span in steps)


def test_without_the_export_no_trace_leaves_the_gateway() -> None:
    assert trace_exporter(cast(Any, SimpleNamespace(otel=None))) is None
