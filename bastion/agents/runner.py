"""Running a stored agent run: its arms built for it (as its owner, behind capability tokens), the
orchestrator, the trace saved as it grows, the result stored; and the ``agent_run`` job kind.

A run is a job: at least once. An attempt after a crash starts the run over (the trace is reset);
a job that gives up marks the run ``failed``. A cancel request reaches the orchestrator's token
within a tick of the job's cancel poll, which kills a sandboxed process (its ``cancel`` event) and
revokes the run's capability tokens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from bastion.agents.arms import ArmKind
from bastion.agents.arms_executor import DEFAULT_TEST_COMMAND, CommandSandbox, ExecutorArm, SpecFactory
from bastion.agents.arms_guardian import ArmGuard, GuardianArm
from bastion.agents.arms_judge import JudgeArm
from bastion.agents.arms_model import JsonModel, ModelArm
from bastion.agents.arms_retriever import RetrieverArm, Searcher
from bastion.agents.budget import RunBudget, Usage
from bastion.agents.capability import CapabilityIssuer, CapabilityVerifier
from bastion.agents.dispatch import RunGrants, SecuredArm, TokenGate, dispatched
from bastion.agents.orchestrator import CancelToken, Orchestrator, RunInputError, RunResult, RunStatus
from bastion.agents.plan import Plan, PlanError, plan_from_data
from bastion.agents.policy import PlanPolicy
from bastion.agents.store import FINAL, AgentRunStore, RunView
from bastion.agents.trace import TraceEvent, event_dict, record_chain
from bastion.auth.principal import Identity
from bastion.jobs.context import JobContext
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService

log = structlog.get_logger("bastion.agents.runner")

JOB_KIND = "agent_run"
#: A crashed run is tried once more, then marked failed.
MAX_ATTEMPTS = 2
#: How often the handler looks at the job's cancel flag (the worker's poll is 0.5 s).
CANCEL_POLL_S = 0.05


class ChosenPlan(Protocol):
    """What a planner mode answers (``bastion.agents.planners.PlanChoice``)."""

    @property
    def plan(self) -> Plan: ...
    @property
    def input(self) -> dict[str, Any]: ...
    @property
    def reason(self) -> str: ...
    @property
    def usage(self) -> Usage: ...


class PlanChooser(Protocol):
    """A planner mode's choice of plan for a task (``bastion.agents.planners.choose_plan``)."""

    async def __call__(
        self,
        mode: str,
        *,
        template: str | None,
        task: str | None,
        input: dict[str, Any],
        policy: PlanPolicy,
        model: JsonModel | None,
    ) -> ChosenPlan: ...


@dataclass(frozen=True, slots=True)
class RunTools:
    """What one run's arms reach, as its owner (the composition root builds it)."""

    guard: ArmGuard
    searcher: Searcher | None = None
    model: JsonModel | None = None
    sandbox: CommandSandbox | None = None
    make_spec: SpecFactory | None = None
    refused: tuple[type[Exception], ...] = ()
    test_command: tuple[str, ...] = DEFAULT_TEST_COMMAND
    #: The owner's plan policy, and the planner modes (None: only templates run).
    policy: PlanPolicy = field(default_factory=PlanPolicy)
    chooser: PlanChooser | None = None


class Toolbox(Protocol):
    async def tools(self, owner: Identity, run_id: str) -> RunTools: ...

    def available_arms(self) -> frozenset[ArmKind]: ...

    def plans_tasks(self) -> bool:
        """Whether the planner modes (a task instead of a template) are available."""
        ...


def charged(budget: RunBudget, usage: Usage) -> RunBudget:
    """What is left of ``budget`` after ``usage`` (the planner's call, before the plan runs)."""
    return budget.model_copy(
        update={
            "max_tokens": max(0, budget.max_tokens - usage.tokens),
            "max_cost_usd": max(0.0, budget.max_cost_usd - usage.cost_usd),
        }
    )


def build_arms(
    tools: RunTools, verifier: CapabilityVerifier, cancel: asyncio.Event, seed: int | None
) -> dict[ArmKind, SecuredArm]:
    def gate(kind: ArmKind) -> TokenGate:
        return TokenGate(verifier, kind)

    arms: dict[ArmKind, SecuredArm] = {
        ArmKind.JUDGE: JudgeArm(gate(ArmKind.JUDGE)),
        ArmKind.GUARDIAN: GuardianArm(tools.guard, gate(ArmKind.GUARDIAN)),
    }
    if tools.searcher is not None:
        arms[ArmKind.RETRIEVER] = RetrieverArm(tools.searcher, tools.guard, gate(ArmKind.RETRIEVER))
    if tools.model is not None:
        arms[ArmKind.CODER] = ModelArm("coder", tools.model, tools.guard, gate(ArmKind.CODER), seed=seed)
        arms[ArmKind.PLANNER] = ModelArm("planner", tools.model, tools.guard, gate(ArmKind.PLANNER), seed=seed)
    if tools.sandbox is not None and tools.make_spec is not None:
        arms[ArmKind.EXECUTOR] = ExecutorArm(
            tools.sandbox,
            tools.make_spec,
            tools.guard,
            gate(ArmKind.EXECUTOR),
            cancel=cancel,
            default_argv=tools.test_command,
            refused=tools.refused,
        )
    return arms


def grants_of(data: Mapping[str, Any]) -> RunGrants:
    return RunGrants(
        collections=tuple(data.get("collections", ())),
        executables=tuple(data.get("executables", ())),
        paths=tuple(data.get("paths", ())),
    )


class _Progress:
    """Saves the trace as it grows: each new event wakes a writer that stores the trace so far."""

    def __init__(self, store: AgentRunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.records: list[dict[str, Any]] = []
        self._dirty = asyncio.Event()

    def add(self, event: TraceEvent) -> None:
        self.records.append(event_dict(event))
        self._dirty.set()

    async def loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            records = list(self.records)
            try:
                await self.store.progress(self.run_id, records, record_chain(records))
            except Exception:  # progress is best effort; the final write carries the whole trace
                log.warning("agent_run_progress_not_saved", run_id=self.run_id, exc_info=True)


#: ``(run, plan, result, wall-clock start)`` of a finished run; must not block.
RunFinished = Callable[[RunView, Plan, RunResult, float], None]


class AgentRunner:
    def __init__(
        self,
        store: AgentRunStore,
        toolbox: Toolbox,
        issuer: CapabilityIssuer,
        verifier: CapabilityVerifier,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_finished: RunFinished | None = None,
    ) -> None:
        self.store = store
        self.toolbox = toolbox
        self.issuer = issuer
        self.verifier = verifier
        self.clock = clock
        #: Called with every finished run (the OpenTelemetry export of its trace, when on).
        self.on_finished = on_finished

    async def execute(self, view: RunView, cancel: CancelToken) -> RunResult:
        """Run ``view``'s plan to its end; the result is stored (and returned)."""
        budget = RunBudget.model_validate(view.budget)
        self.verifier.uses.restart_run(view.id)  # an attempt after a crash mints the same token ids
        tools = await self.toolbox.tools(view.owner, view.id)
        data = view.input
        if view.plan:
            plan = plan_from_data(view.plan, f"run {view.id}")
        else:  # a task: the planner mode chooses the plan now, as the owner, charged to the run
            plan, data, budget = await self._choose(view, tools, budget)
        secured = build_arms(tools, self.verifier, cancel.event, view.seed)
        deadline = self.issuer.clock() + budget.max_wall_s
        arms = dispatched(secured, self.issuer, grants_of(view.grants), lambda: deadline)
        progress = _Progress(self.store, view.id)
        writer = asyncio.create_task(progress.loop())
        started_at = time.time()
        try:
            orchestrator = Orchestrator(arms, clock=self.clock, observer=progress.add)
            result = await orchestrator.run(plan, data, budget=budget, cancel=cancel, run_id=view.id)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if cancel.cancelled:
                self.verifier.revoke_run(view.id)
        # Shielded: the worker cancels a cancelled job's task a tick later; the result must land.
        await asyncio.shield(self.store.finish(view.id, result))
        if self.on_finished is not None:
            self.on_finished(view, plan, result, started_at)
        return result

    async def _choose(
        self, view: RunView, tools: RunTools, budget: RunBudget
    ) -> tuple[Plan, dict[str, Any], RunBudget]:
        if tools.chooser is None:
            raise PlanError(f"the {view.planner} planner mode is not available on this gateway")
        try:
            choice = await tools.chooser(
                view.planner,
                template=view.template,
                task=view.task,
                input=view.input,
                policy=tools.policy,
                model=tools.model,
            )
        except ValueError as exc:  # the planner's refusal (no template matched, bad input): the run fails
            raise PlanError(f"{view.planner} planner: {exc}") from None
        plan_json = choice.plan.model_dump(mode="json", exclude_none=True)
        await self.store.set_plan(view.id, plan_json, choice.input, choice.reason)
        return choice.plan, choice.input, charged(choice.plan.budget.capped_by(budget), choice.usage)


async def submit_run(jobs: JobService, store: AgentRunStore, view: RunView) -> RunView:
    job = await jobs.submit(
        NewJob(
            JOB_KIND,
            payload={"run_id": view.id},
            tenant_id=view.tenant_id,
            key_id=view.owner.key_id,
            user_id=view.owner.user_id,
            max_attempts=MAX_ATTEMPTS,
        )
    )
    await store.set_job(view.id, job.id)
    return await store.load(view.id) or view


class AgentRunJob:
    """The ``agent_run`` job kind: one run per job."""

    def __init__(self, runner: AgentRunner) -> None:
        self.runner = runner

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        store = self.runner.store
        run_id = str(ctx.payload["run_id"])
        view = await store.load(run_id)
        if view is None or view.status in FINAL:
            return {"run_id": run_id, "status": view.status if view else "missing"}
        if not await store.start(run_id):
            return {"run_id": run_id, "status": "ended before it started"}
        cancel = CancelToken()
        watcher = asyncio.create_task(_watch(ctx, cancel))
        try:
            result = await self.runner.execute(view, cancel)
        except (PlanError, RunInputError) as exc:  # a chosen plan that cannot run: the run fails
            await store.end(run_id, RunStatus.FAILED.value, str(exc))
            return {"run_id": run_id, "status": RunStatus.FAILED.value}
        except asyncio.CancelledError:
            # Stopped by its cancel: the run ends cancelled. Stopped because the worker is stopping
            # (or lost its lease): the job is handed out again and the next attempt starts over.
            if ctx.cancel_requested:
                await asyncio.shield(store.end(run_id, RunStatus.CANCELLED.value, "cancelled by the owner"))
            raise
        except Exception as exc:
            if ctx.attempt >= MAX_ATTEMPTS:
                await store.end(run_id, RunStatus.FAILED.value, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            watcher.cancel()
        ctx.progress(result.iterations, None)
        return {"run_id": run_id, "status": result.status.value, "trace_hash": result.trace_hash}


async def _watch(ctx: JobContext, cancel: CancelToken) -> None:
    while not ctx.cancel_requested:
        await asyncio.sleep(CANCEL_POLL_S)
    cancel.cancel("cancelled by the owner")


async def wait_finished(store: AgentRunStore, run_id: str, timeout_s: float, poll_s: float = 0.1) -> RunView | None:
    """The run once it ended, or None after ``timeout_s`` (the request's synchronous wait)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        view = await store.load(run_id)
        if view is None or view.finished or loop.time() >= end:
            return view if view is not None and view.finished else None
        await asyncio.sleep(poll_s)
