"""Agent runs as a service: start (validate, cap the budget by the tenant's plan policy, store,
queue the job), read, trace (verified), cancel, templates. The HTTP layer and the CLI are thin
over this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from bastion.agents.arms import ArmKind
from bastion.agents.budget import RunBudget
from bastion.agents.capability import CapabilityVerifier
from bastion.agents.plan import Plan, PlanError, schema_errors
from bastion.agents.policy import PlanPolicy, policy_violations
from bastion.agents.runner import Toolbox, submit_run
from bastion.agents.store import FINAL, AgentRunStore, NewRun, RunView
from bastion.agents.templates import get_template, shipped_templates
from bastion.agents.trace import first_broken_record
from bastion.auth.principal import Identity
from bastion.config.agents_settings import AgentLimits, AgentsSettings
from bastion.errors import Conflict, InvalidRequest
from bastion.jobs.service import JobService

PLANNER_MODES = ("template", "constrained", "delegate")
_FIELDS = frozenset({"template", "task", "input", "budget", "planner", "wait", "stream", "collections", "seed"})


@dataclass(frozen=True, slots=True)
class RunRequest:
    template: str | None
    task: str | None
    input: dict[str, Any]
    budget: dict[str, Any] | None
    planner: str
    wait: bool
    stream: bool
    collections: list[str] | None
    seed: int | None


def parse_run_request(body: Any) -> RunRequest:
    """The body of ``POST /v1/agents/runs``; a bad one is an InvalidRequest naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"Invalid request: unknown field {unknown[0][:64]!r}.", param=unknown[0][:64])
    template, task = body.get("template"), body.get("task")
    if template is None and task is None:
        raise InvalidRequest("Invalid request: give a template or a task.", param="template")
    for name, value in (("template", template), ("task", task)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidRequest(f"Invalid request: {name} must be a non-empty string.", param=name)
    data = body.get("input", {})
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid request: input must be a JSON object.", param="input")
    budget = body.get("budget")
    if budget is not None and not isinstance(budget, dict):
        raise InvalidRequest("Invalid request: budget must be a JSON object.", param="budget")
    planner = body.get("planner", "template")
    if planner not in PLANNER_MODES:
        raise InvalidRequest(f"Invalid request: planner must be one of {', '.join(PLANNER_MODES)}.", param="planner")
    collections = body.get("collections")
    if collections is not None and (
        not isinstance(collections, list) or not all(isinstance(c, str) and c for c in collections)
    ):
        raise InvalidRequest("Invalid request: collections must be a list of collection names.", param="collections")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidRequest("Invalid request: seed must be an integer.", param="seed")
    flags = {}
    for name in ("wait", "stream"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise InvalidRequest(f"Invalid request: {name} must be true or false.", param=name)
        flags[name] = value
    if planner == "template" and (task is not None or template is None):
        raise InvalidRequest("Invalid request: a task needs a planner mode (constrained or delegate).", param="task")
    return RunRequest(template, task, data, budget, planner, flags["wait"], flags["stream"], collections, seed)


def policy_for(settings: AgentsSettings, tenant_name: str | None) -> PlanPolicy:
    limits: AgentLimits = settings.tenant_limits.get(tenant_name or "", settings.limits)
    budget = RunBudget(
        max_iterations=limits.max_iterations,
        max_wall_s=limits.max_wall_s,
        max_tokens=limits.max_tokens,
        max_cost_usd=limits.max_cost_usd,
        max_tool_calls=limits.max_tool_calls,
    )
    arms = frozenset(ArmKind(a) for a in limits.allowed_arms if a in ArmKind.__members__.values())
    return PlanPolicy(allowed_arms=arms, max_budget=budget, max_steps=limits.max_steps)


class AgentRuns:
    def __init__(
        self,
        settings: AgentsSettings,
        store: AgentRunStore,
        jobs: JobService,
        verifier: CapabilityVerifier,
        toolbox: Toolbox,
        sandbox_report: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.verifier = verifier
        #: What the runs' arms reach (the model, the knowledge search, the sandbox).
        self.toolbox = toolbox
        self._sandbox_report = sandbox_report

    async def sandbox_report(self) -> dict[str, Any]:
        """The sandbox in force (its self-test), for ``GET /v1/agents/sandbox``."""
        if self._sandbox_report is None:
            return {"available": False, "tier": None}
        return await self._sandbox_report()

    def templates(self) -> list[Plan]:
        return list(shipped_templates().values())

    async def start(self, owner: Identity, tenant_name: str | None, request: RunRequest) -> RunView:
        if len(orjson.dumps(request.input)) > self.settings.max_input_bytes:
            raise InvalidRequest(f"Invalid request: input is larger than {self.settings.max_input_bytes:,} bytes.")
        if request.planner != "template":
            return await self._start_task(owner, tenant_name, request)
        assert request.template is not None  # parse_run_request: template mode names a template
        try:
            plan = get_template(request.template)
        except PlanError as exc:
            raise InvalidRequest(f"Invalid request: {exc}", param="template") from None
        policy = policy_for(self.settings, tenant_name)
        # A template's default budget is capped like a caller's; its arms and step caps must fit.
        capped_plan = plan.model_copy(update={"budget": plan.budget.capped_by(policy.max_budget)})
        problems = policy_violations(capped_plan, policy)
        available = self.toolbox.available_arms()
        missing = sorted({s.arm.value for s in plan.steps if s.arm not in available})
        if missing:
            problems.append(f"arms not available on this gateway: {', '.join(missing)}")
        if problems:
            raise InvalidRequest(f"Invalid request: template {plan.name!r}: " + "; ".join(problems), param="template")
        errors = schema_errors(request.input, plan.input_schema)
        if errors:
            raise InvalidRequest(
                f"Invalid request: input does not match {plan.name!r}: " + "; ".join(errors), param="input"
            )
        asked = self._budget(request) or plan.budget
        plan_json = plan.model_dump(mode="json", by_alias=True, exclude_none=True)
        return await self._submit(owner, request, plan.name, plan_json, asked.capped_by(policy.max_budget))

    async def _start_task(self, owner: Identity, tenant_name: str | None, request: RunRequest) -> RunView:
        """A task: the plan is chosen by the planner mode when the run executes (its model call is
        the owner's and charged to the run)."""
        if not self.toolbox.plans_tasks():
            message = f"Invalid request: the {request.planner} planner mode is not available on this gateway."
            raise InvalidRequest(message, param="planner")
        if request.template is not None:
            try:
                get_template(request.template)  # the fallback must exist
            except PlanError as exc:
                raise InvalidRequest(f"Invalid request: {exc}", param="template") from None
        asked = self._budget(request) or RunBudget()
        budget = asked.capped_by(policy_for(self.settings, tenant_name).max_budget)
        return await self._submit(owner, request, request.template, {}, budget)

    @staticmethod
    def _budget(request: RunRequest) -> RunBudget | None:
        try:
            return RunBudget.model_validate(request.budget) if request.budget is not None else None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidRequest(f"Invalid request: budget.{where}: {first['msg']}", param="budget") from None

    async def _submit(
        self, owner: Identity, request: RunRequest, template: str | None, plan: dict[str, Any], budget: RunBudget
    ) -> RunView:
        collections = request.collections or _collections_in(request.input)
        grants = {"collections": collections, "executables": list(self.settings.executables), "paths": ["."]}
        new = NewRun(
            owner=owner,
            template=template,
            planner=request.planner,
            plan=plan,
            input=request.input,
            budget=budget.model_dump(),
            grants=grants,
            seed=request.seed,
            task=request.task,
        )
        return await submit_run(self.jobs, self.store, await self.store.add(new))

    async def get(self, tenant_id: str, run_id: str) -> RunView:
        view = await self.store.get(tenant_id, run_id)
        if not view.finished and view.job_id is not None:
            view = await self._reconcile(view)
        return view

    async def _reconcile(self, view: RunView) -> RunView:
        """A run whose job ended without it (the job failed for good, or was cancelled while
        queued) takes the job's outcome."""
        job = await self.jobs.get(view.job_id or "")
        if job.state in ("failed", "cancelled"):
            status = "cancelled" if job.state == "cancelled" else "failed"
            await self.store.end(view.id, status, job.error or f"the run's job was {job.state}")
            return await self.store.get(view.tenant_id, view.id)
        return view

    async def cancel(self, tenant_id: str, run_id: str) -> RunView:
        view = await self.store.get(tenant_id, run_id)
        if view.status in FINAL:
            raise Conflict(f"Agent run {run_id!r} already ended ({view.status}).")
        self.verifier.revoke_run(view.id)
        if view.job_id is not None:
            try:
                job = await self.jobs.cancel(view.job_id, tenant_id)
            except Conflict:  # the job just ended: its handler stores the run's outcome
                return await self.get(tenant_id, run_id)
            if job.state == "cancelled":  # it had not started: nothing else will end the run
                await self.store.end(view.id, "cancelled", "cancelled by the owner")
        return await self.store.get(tenant_id, run_id)


def trace_json(view: RunView) -> dict[str, Any]:
    broken = first_broken_record(view.trace, view.links)
    return {
        "object": "agent.run.trace",
        "run_id": view.id,
        "events": view.trace,
        "links": view.links,
        "trace_hash": view.links[-1] if view.links else None,
        "verified": broken is None,
        "first_broken_link": broken,
    }


def run_json(view: RunView) -> dict[str, Any]:
    return {
        "object": "agent.run",
        "id": view.id,
        "template": view.template,
        "planner": view.planner,
        "task": view.task,
        "planner_reason": view.planner_reason,
        "status": view.status,
        "reason": view.reason,
        "input": view.input,
        "budget": view.budget,
        "grants": view.grants,
        "outputs": view.outputs,
        "output": view.output,
        "spent": view.spent,
        "iterations": view.iterations,
        "events": len(view.trace),
        "trace_hash": view.trace_hash,
        "job_id": view.job_id,
        "created_at": int(view.created_at.timestamp()),
        "started_at": int(view.started_at.timestamp()) if view.started_at else None,
        "finished_at": int(view.finished_at.timestamp()) if view.finished_at else None,
    }


def _collections_in(data: dict[str, Any]) -> list[str]:
    found = data.get("collections") or ([data["collection"]] if data.get("collection") else [])
    return [c for c in found if isinstance(c, str)] if isinstance(found, list) else []
