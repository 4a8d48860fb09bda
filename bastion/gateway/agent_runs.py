"""Agent runs wired to the gateway: the coder and planner arms' model (the pipeline, in process, as
the run's owner: guard, limits, budgets and ledger apply; each call is a ledger interaction with
``extra.agent_run``), the retriever's knowledge search (the owner's tenant), the guard policy of
the owner, and the sandbox when one is installed."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from bastion.agents.arms import ArmBlocked, ArmError, ArmKind
from bastion.agents.arms_executor import DEFAULT_TEST_COMMAND, CommandSandbox, SpecFactory
from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.arms_model import JsonModel
from bastion.agents.budget import Usage
from bastion.agents.capability import CapabilityIssuer, CapabilityVerifier, MemoryUseStore, derive_secret
from bastion.agents.orchestrator import RunResult
from bastion.agents.plan import Plan
from bastion.agents.policy import PlanPolicy
from bastion.agents.runner import JOB_KIND as AGENT_RUN_JOB
from bastion.agents.runner import AgentRunJob, AgentRunner, ChosenPlan, PlanChooser, RunFinished, RunTools
from bastion.agents.service import AgentRuns, policy_for
from bastion.agents.store import AgentRunStore, RunView
from bastion.auth.principal import Identity, Principal
from bastion.config.settings import Settings
from bastion.errors import BastionError
from bastion.gateway.internal_chat import internal_chat_context
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.services import Services
from bastion.guard.service import ContentBlocked
from bastion.knowledge.model import SearchRequest
from bastion.knowledge.service import KnowledgeService
from bastion.providers.base import ChatResponse

USER_AGENT = "bastion-agent-run"


class GatewayJsonModel:
    """A model through the pipeline as ``principal``: a JSON answer under a schema (the embedded
    local model decodes it under a grammar; providers get ``response_format: json_schema``)."""

    def __init__(self, pipeline: Pipeline, principal: Principal, model: str, run_id: str) -> None:
        self.pipeline = pipeline
        self.principal = principal
        self.model = model
        self.run_id = run_id

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        }
        if seed is not None:
            body["seed"] = seed
        ctx = internal_chat_context(body, USER_AGENT)
        ctx.principal = self.principal
        ctx.ledger_extra = {"agent_run": self.run_id}
        try:
            result = await self.pipeline.chat(ctx)
        except ContentBlocked:  # the owner's guard refused the prompt: the run ends blocked
            raise ArmBlocked("the guard blocked the model call") from None
        except BastionError as exc:
            raise ArmError(f"model call refused: {exc}") from None
        if not isinstance(result, ChatResponse):
            raise ArmError("model call answered with a stream")
        usage = result.usage
        tokens = (usage.prompt_tokens + usage.completion_tokens) if usage is not None else max_tokens
        choices = result.body.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content") or ""
        return str(content), Usage(tokens=tokens, cost_usd=ctx.cost_usd)


class KnowledgeSearcher:
    def __init__(self, knowledge: KnowledgeService, tenant_id: str) -> None:
        self.knowledge = knowledge
        self.tenant_id = tenant_id

    async def search(self, query: str, collections: list[str], k: int) -> list[dict[str, Any]]:
        try:
            hits = await self.knowledge.search(self.tenant_id, SearchRequest(query=query, collections=collections, k=k))
        except BastionError as exc:
            raise ArmError(f"search failed: {exc}") from None
        return [
            {
                "id": str(hit.chunk_id),
                "text": hit.text,
                "title": hit.title,
                "uri": hit.uri,
                "document": hit.document_key,
            }
            for hit in hits
        ]


SandboxParts = tuple[CommandSandbox, SpecFactory, tuple[type[Exception], ...]]


class InstalledSandbox:
    """The executor's sandbox (``bastion.sandbox``) when that package is installed. Its self-test
    starts processes, so the tier is selected at first use (the first command), not at start-up."""

    def __init__(self, settings: Settings) -> None:
        try:
            self.module: Any = importlib.import_module("bastion.sandbox")
        except ImportError:
            self.module = None
        self.settings: Any = getattr(settings, "sandbox", None)
        self._selected: SandboxParts | None = None
        self._lock = asyncio.Lock()

    @property
    def installed(self) -> bool:
        return self.module is not None and self.settings is not None

    async def parts(self) -> SandboxParts | None:
        if not self.installed:
            return None
        async with self._lock:
            if self._selected is None:
                sandbox = await asyncio.to_thread(self.module.select_sandbox, self.settings)
                spec_class = self.module.CommandSpec

                def make_spec(argv: tuple[str, ...], stdin: bytes, files: Any) -> Any:
                    return spec_class(argv=argv, stdin=stdin, files=files)

                self._selected = (sandbox, make_spec, (self.module.CommandRefused,))
        return self._selected

    async def report(self) -> dict[str, Any]:
        """The self-test: the tier in force and what each probe found."""
        if not self.installed:
            return {"available": False, "tier": None, "reason": "no sandbox is installed: the executor arm is off"}
        parts = await self.parts()
        assert parts is not None
        return _report(parts[0])


def _report(sandbox: Any) -> dict[str, Any]:
    tier = getattr(sandbox, "tier", None)
    report: Any = getattr(sandbox, "report", None)
    shown: dict[str, Any] = {"available": True, "tier": str(tier) if tier is not None else None}
    if report is not None:
        shown["report"] = report.as_dict() if hasattr(report, "as_dict") else report.to_json()
    return shown


def _installed_planners() -> PlanChooser | None:
    """The planner modes (``bastion.agents.planners``) when that module is installed; else None and
    only templates run."""
    try:
        planners: Any = importlib.import_module("bastion.agents.planners")
    except ImportError:
        return None

    async def choose(
        mode: str,
        *,
        template: str | None,
        task: str | None,
        input: dict[str, Any],
        policy: PlanPolicy,
        model: JsonModel | None,
    ) -> ChosenPlan:
        chosen: ChosenPlan = await planners.choose_plan(
            planners.PlannerMode(mode), template=template, task=task, input=input, policy=policy, model=model
        )
        return chosen

    return choose


class GatewayToolbox:
    def __init__(self, services: Services, pipeline: Pipeline) -> None:
        self.services = services
        self.pipeline = pipeline
        self.installed_sandbox = InstalledSandbox(services.settings)
        #: Replaces the installed sandbox (tests).
        self.sandbox: SandboxParts | None = None
        #: Replaces the gateway model of the coder and planner arms (tests).
        self.model_override: JsonModel | None = None
        self.chooser = _installed_planners()

    def plans_tasks(self) -> bool:
        return self.chooser is not None

    def available_arms(self) -> frozenset[ArmKind]:
        arms = {ArmKind.JUDGE, ArmKind.GUARDIAN}
        if self.services.knowledge is not None:
            arms.add(ArmKind.RETRIEVER)
        if self.services.settings.agents.model or self.model_override is not None:
            arms |= {ArmKind.CODER, ArmKind.PLANNER}
        if self.sandbox is not None or self.installed_sandbox.installed:
            arms.add(ArmKind.EXECUTOR)
        return frozenset(arms)

    async def sandbox_report(self) -> dict[str, Any]:
        if self.sandbox is not None:
            return _report(self.sandbox[0])
        return await self.installed_sandbox.report()

    async def tools(self, owner: Identity, run_id: str) -> RunTools:
        # Resolved when the run executes: a key revoked meanwhile stops the run.
        principal = await self.services.authenticator.principal_of(owner)
        guard = self.services.guard
        # Fail closed: arms are guarded even where the gateway's guard stages are off.
        arm_guard = ArmGuard(guard.policy(principal) if guard is not None else None)
        settings = self.services.settings.agents
        knowledge = self.services.knowledge
        sandbox = self.sandbox or await self.installed_sandbox.parts()
        model: JsonModel | None = self.model_override
        if model is None and settings.model:
            model = GatewayJsonModel(self.pipeline, principal, settings.model, run_id)
        return RunTools(
            guard=arm_guard,
            searcher=KnowledgeSearcher(knowledge, owner.tenant_id) if knowledge is not None else None,
            model=model,
            sandbox=sandbox[0] if sandbox else None,
            make_spec=sandbox[1] if sandbox else None,
            refused=sandbox[2] if sandbox else (),
            test_command=tuple(settings.test_command) if settings.test_command else DEFAULT_TEST_COMMAND,
            policy=policy_for(settings, principal.tenant_name),
            chooser=self.chooser,
        )


def trace_exporter(services: Services) -> RunFinished | None:
    """A finished run's decision trace as OpenTelemetry spans, when that export is on; else None
    (the trace never leaves the gateway by default)."""
    otel = services.otel
    if otel is None:
        return None

    def export(view: RunView, plan: Plan, result: RunResult, started_at: float) -> None:
        otel.record_agent_run(
            result.trace,
            run_id=view.id,
            plan=plan.name,
            started_at=started_at,
            attributes={"bastion.tenant_id": view.tenant_id, "bastion.agent.status": result.status.value},
        )

    return export


def build_agent_runs(services: Services, pipeline: Pipeline) -> AgentRuns | None:
    """The agent runs service and the ``agent_run`` job kind (None: ``agents.enabled`` is false)."""
    settings = services.settings
    if not settings.agents.enabled:
        return None
    root = settings.master_key.get_secret_value() if settings.master_key is not None else None
    secret = derive_secret(root)
    store = AgentRunStore(services.db)
    issuer = CapabilityIssuer(secret, ttl_s=settings.agents.token_ttl_s)
    verifier = CapabilityVerifier(secret, MemoryUseStore())
    toolbox = GatewayToolbox(services, pipeline)
    runner = AgentRunner(store, toolbox, issuer, verifier, on_finished=trace_exporter(services))
    services.jobs.registry.register(AGENT_RUN_JOB, AgentRunJob(runner).run, max_attempts=2)
    return AgentRuns(settings.agents, store, services.jobs, verifier, toolbox, toolbox.sandbox_report)
