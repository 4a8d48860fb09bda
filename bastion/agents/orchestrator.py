"""The orchestrator: a deterministic state machine over a plan.

Before every attempt of a step (or of a parallel group's members together) it checks iterations,
wall time, tokens, cost and tool calls against what remains of the run's budget and reserves the
attempt's caps; after the attempt it settles the reservation with the actual usage. Arm failures,
timeouts, schema-invalid outputs and failed checks follow the step's ``on_failure``; a guard's
refusal ends the run ``blocked``; a cancel token or the wall-time limit stops the running arm tasks
within the current step. Every run ends with a status, a reason, the outputs so far and the trace;
nothing recurses (loops are plan edges bounded by ``max_iterations``)."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.agents.arms import Arm, ArmBlocked, ArmError, ArmKind, StepInput
from bastion.agents.breaker import ArmBreaker
from bastion.agents.budget import BudgetTracker, BudgetView, RunBudget, Usage, reservation
from bastion.agents.capability import derive_jti
from bastion.agents.plan import FailureAction, Plan, PlanError, StepSpec, resolve, schema_errors, units
from bastion.agents.trace import (
    BreakerChecked,
    BudgetChecked,
    LoopTaken,
    RunEnded,
    StepFinished,
    StepRetried,
    StepSkipped,
    StepStarted,
    TraceEvent,
    content_hash,
    trace_hash,
)


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BLOCKED = "blocked"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunInputError(ValueError):
    """The run's input does not match the plan's ``input_schema`` (the caller's error)."""


class CancelToken:
    """Set once; the orchestrator stops at the current step and cancels the running arm tasks."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def event(self) -> asyncio.Event:
        """Set with the token: what a sandboxed process watches to be killed."""
        return self._event

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    plan: str
    status: RunStatus
    reason: str
    outputs: dict[str, dict[str, Any] | None]  # step id -> its latest output (None: skipped)
    output: dict[str, Any] | None  # the last step's output when the run succeeded
    spent: Usage
    iterations: int
    trace: list[TraceEvent]

    @property
    def trace_hash(self) -> str:
        return trace_hash(self.trace)


@dataclass(slots=True)
class _Outcome:
    step: StepSpec
    attempt: int
    kind: str  # ok | error | blocked
    output: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    arm_fault: bool = False  # counts against the arm's breaker


class _ObservedTrace(list[TraceEvent]):
    """The trace, telling an observer of each event appended."""

    def __init__(self, observer: Callable[[TraceEvent], None] | None) -> None:
        super().__init__()
        self._observer = observer

    def append(self, event: TraceEvent) -> None:
        super().append(event)
        if self._observer is not None:
            self._observer(event)


class _Stop(Exception):
    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Orchestrator:
    """Runs plans over a set of arms; the breakers (one per arm) live as long as the orchestrator."""

    def __init__(
        self,
        arms: Mapping[ArmKind, Arm],
        *,
        clock: Callable[[], float] = time.monotonic,
        breaker_policy: BreakerPolicy | None = None,
        observer: Callable[[TraceEvent], None] | None = None,
    ) -> None:
        policy = breaker_policy or BreakerPolicy()
        self.arms = dict(arms)
        self.clock = clock
        #: Sees each trace event as it is recorded (a run's progress); the trace is the same without it.
        self.observer = observer
        self.breakers = {kind: ArmBreaker(policy.failure_threshold, policy.cooldown_s, clock) for kind in ArmKind}

    async def run(
        self,
        plan: Plan,
        data: dict[str, Any],
        *,
        budget: RunBudget | None = None,
        cancel: CancelToken | None = None,
        run_id: str = "run",
    ) -> RunResult:
        missing = sorted({s.arm.value for s in plan.steps if s.arm not in self.arms})
        if missing:
            raise PlanError(f"plan {plan.name!r} uses arms that are not available: {', '.join(missing)}")
        errors = schema_errors(data, plan.input_schema)
        if errors:
            raise RunInputError(f"input does not match plan {plan.name!r}: " + "; ".join(errors))
        run = _Run(self, plan, data, budget or plan.budget, cancel or CancelToken(), run_id)
        return await run.execute()


class _Run:
    def __init__(
        self, owner: Orchestrator, plan: Plan, data: dict[str, Any], budget: RunBudget, cancel: CancelToken, run_id: str
    ) -> None:
        self.o = owner
        self.plan = plan
        self.input = data
        self.cancel = cancel
        self.run_id = run_id
        self.tracker = BudgetTracker(budget)
        self.started = owner.clock()
        self.trace: list[TraceEvent] = _ObservedTrace(owner.observer)
        self.outputs: dict[str, dict[str, Any] | None] = {}

    def now(self) -> float:
        return round(self.o.clock() - self.started, 6)

    async def execute(self) -> RunResult:
        plan_units = units(self.plan.steps)
        index_of = {s.id: i for i, unit in enumerate(plan_units) for s in unit}
        status, reason = RunStatus.SUCCEEDED, "all steps done"
        last: StepSpec | None = None
        i = 0
        try:
            while i < len(plan_units):
                unit = plan_units[i]
                await self._unit(unit)
                last = unit[-1]
                jump = self._loop_target(unit)
                if jump is None:
                    i += 1
                else:
                    self.trace.append(LoopTaken(self.now(), unit[0].id, jump))
                    i = index_of[jump]
        except _Stop as stop:
            status, reason = stop.status, stop.reason
        self.trace.append(RunEnded(self.now(), status.value, reason, self.tracker.spent, self.tracker.iterations))
        final = self.outputs.get(last.id) if status is RunStatus.SUCCEEDED and last else None
        return RunResult(
            run_id=self.run_id,
            plan=self.plan.name,
            status=status,
            reason=reason,
            outputs=dict(self.outputs),
            output=final,
            spent=self.tracker.spent,
            iterations=self.tracker.iterations,
            trace=list(self.trace),
        )

    def _loop_target(self, unit: list[StepSpec]) -> str | None:
        step = unit[0]
        if len(unit) != 1 or not step.loop_to:
            return None
        output = self.outputs.get(step.id)
        if step.loop_until is not None and output is not None and step.loop_until.holds(output):
            return None
        return step.loop_to

    async def _unit(self, unit: list[StepSpec]) -> None:
        """One step, or a parallel group: attempts in rounds until every member succeeded, was
        skipped or ended the run; each round is checked and reserved as a whole."""
        pending = [(step, 1) for step in unit]
        while pending:
            if self.cancel.cancelled:
                raise _Stop(RunStatus.CANCELLED, self.cancel.reason)
            need = sum((reservation(s.budget) for s, _ in pending), Usage())
            ids = tuple(s.id for s, _ in pending)
            short = self.tracker.shortfall(len(pending), need, self.now())
            self.trace.append(
                BudgetChecked(self.now(), ids, need, self.tracker.remaining(self.now()), short is None, short)
            )
            if short is not None:
                raise _Stop(RunStatus.BUDGET_EXHAUSTED, short)
            self.tracker.reserve(len(pending), need)
            outcomes = await self._round(pending)
            pending = []
            stops: list[_Stop] = []
            for outcome in outcomes:  # every member is settled and recorded before the run ends
                decision = self._decide(outcome)
                if isinstance(decision, _Stop):
                    stops.append(decision)
                elif decision:
                    pending.append((outcome.step, outcome.attempt + 1))
            if stops and self.cancel.cancelled:  # a member stopped by the cancel (its process killed)
                raise _Stop(RunStatus.CANCELLED, self.cancel.reason)
            if stops:
                raise min(stops, key=lambda s: s.status is not RunStatus.BLOCKED)

    async def _round(self, members: list[tuple[StepSpec, int]]) -> list[_Outcome]:
        scope = {"input": self.input, "steps": self.outputs}
        calls: list[tuple[StepSpec, int, dict[str, Any], int]] = []
        first = self.tracker.iterations - len(members) + 1  # the round's iterations are reserved
        for number, (step, attempt) in enumerate(members, start=first):
            data = resolve(step.input, scope)
            state = self.o.breakers[step.arm].state
            self.trace.append(BreakerChecked(self.now(), step.id, step.arm.value, state.value))
            jti = derive_jti(self.run_id, step.id, number)
            left = self.tracker.remaining(self.now())
            self.trace.append(StepStarted(self.now(), step.id, step.arm.value, attempt, content_hash(data), jti, left))
            calls.append((step, attempt, data, number))
        wall_left = self.tracker.budget.max_wall_s - (self.o.clock() - self.started)

        async def together() -> list[_Outcome]:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._attempt(s, a, d, n)) for s, a, d, n in calls]
            return [t.result() for t in tasks]

        work = asyncio.ensure_future(together())
        stopper = asyncio.ensure_future(self.cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {work, stopper}, timeout=max(wall_left, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work in done:
            return work.result()
        # Stopped inside the round: what the arms used is unknown, so their reservations are charged.
        reason = self.cancel.reason if self.cancel.cancelled else f"wall time: {self.tracker.budget.max_wall_s} s"
        for step, attempt, _, _ in calls:
            held = reservation(step.budget)
            self.tracker.settle(held, held)
            left = self.tracker.remaining(self.now())
            self.trace.append(
                StepFinished(self.now(), step.id, step.arm.value, attempt, False, held, left, error=reason)
            )
        if self.cancel.cancelled:
            raise _Stop(RunStatus.CANCELLED, reason)
        raise _Stop(RunStatus.BUDGET_EXHAUSTED, reason)

    async def _attempt(self, step: StepSpec, attempt: int, data: dict[str, Any], number: int) -> _Outcome:
        if not self.o.breakers[step.arm].allows():
            return _Outcome(step, attempt, "error", error=f"circuit open for arm {step.arm.value}")
        errors = schema_errors(data, step.input_schema)
        if errors:
            return _Outcome(step, attempt, "error", error="input does not match input_schema: " + "; ".join(errors))
        left = self.tracker.remaining(self.o.clock() - self.started)
        view = BudgetView(
            step.budget.max_tokens,
            step.budget.max_cost_usd,
            step.budget.max_tool_calls,
            deadline_s=min(left.wall_s, step.budget.timeout_s or left.wall_s),
            remaining=left,
        )
        try:
            call = self.o.arms[step.arm].run(StepInput(self.run_id, step.id, attempt, data, number), view)
            result = await asyncio.wait_for(call, step.budget.timeout_s)
        except ArmBlocked as exc:
            return _Outcome(step, attempt, "blocked", usage=exc.usage, error=str(exc))
        except ArmError as exc:
            return _Outcome(step, attempt, "error", usage=exc.usage, error=str(exc), arm_fault=True)
        except TimeoutError:
            error = f"timed out after {step.budget.timeout_s} s"
            return _Outcome(step, attempt, "error", usage=reservation(step.budget), error=error, arm_fault=True)
        except Exception as exc:  # an arm's bug must not end the run without a result and a trace
            return _Outcome(step, attempt, "error", error=f"{type(exc).__name__}: {exc}", arm_fault=True)
        output = result.output
        errors = schema_errors(output, step.output_schema) if isinstance(output, dict) else ["output is not an object"]
        if errors:
            error = "output does not match output_schema: " + "; ".join(errors)
            return _Outcome(step, attempt, "error", usage=result.usage, error=error, arm_fault=True)
        failed = [f"{c.path} {c.op}" for c in step.checks if not c.holds(output)]
        if failed:
            return _Outcome(step, attempt, "error", output, result.usage, "checks failed: " + ", ".join(failed))
        return _Outcome(step, attempt, "ok", output, result.usage)

    def _decide(self, outcome: _Outcome) -> bool | _Stop:
        """Settle the attempt, record it, and say whether the step runs again, or how the run ends
        (the step was blocked, or failed with nothing left to try)."""
        step, attempt = outcome.step, outcome.attempt
        self.tracker.settle(reservation(step.budget), outcome.usage)
        breaker = self.o.breakers[step.arm]
        if outcome.kind == "ok":
            breaker.record_success()
        elif outcome.arm_fault:
            breaker.record_failure()
        ok = outcome.kind == "ok"
        out_hash = content_hash(outcome.output) if outcome.output is not None else None
        self.trace.append(
            StepFinished(
                self.now(),
                step.id,
                step.arm.value,
                attempt,
                ok,
                outcome.usage,
                self.tracker.remaining(self.now()),
                out_hash,
                outcome.error,
            )
        )
        if ok:
            self.outputs[step.id] = outcome.output
            return False
        if outcome.kind == "blocked":
            return _Stop(RunStatus.BLOCKED, f"step {step.id}: {outcome.error}")
        policy = step.on_failure
        if policy.action is FailureAction.RETRY and attempt <= policy.retries:
            self.trace.append(StepRetried(self.now(), step.id, attempt + 1, outcome.error or ""))
            return True
        action = policy.then if policy.action is FailureAction.RETRY else policy.action.value
        if action == "skip":
            self.trace.append(StepSkipped(self.now(), step.id, outcome.error or ""))
            self.outputs[step.id] = None
            return False
        return _Stop(RunStatus.FAILED, f"step {step.id} failed (attempt {attempt}): {outcome.error}")
