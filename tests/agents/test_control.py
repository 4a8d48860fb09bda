"""Retries, skip and abort; guardian blocks; parallel groups; breakers per arm; cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.agents.arms import ArmBlocked, ArmError, ArmKind, ArmResult, StepInput
from bastion.agents.breaker import ArmBreaker, ArmBreakerState
from bastion.agents.budget import BudgetView, RunBudget, Usage
from bastion.agents.orchestrator import BreakerPolicy, CancelToken, Orchestrator, RunStatus
from bastion.agents.trace import BreakerChecked, StepFinished, StepRetried, StepSkipped, StepStarted
from tests.agents.fakes import FakeArm, FakeClock, arms, plan


def failing(times: int, usage: Usage = Usage()) -> FakeArm:
    """Fails its first ``times`` calls, then returns ``{"ok": True}``."""
    arm = FakeArm()

    async def behaviour(step: StepInput, budget: BudgetView) -> ArmResult:
        if len(arm.calls) <= times:
            raise ArmError(f"failure {len(arm.calls)}", usage)
        return ArmResult({"ok": True})

    arm.behaviour = behaviour
    return arm


async def test_retry_until_success_charges_every_attempt() -> None:
    coder = failing(2, Usage(tokens=7))
    steps = [{"id": "a", "arm": "coder", "on_failure": {"action": "retry", "retries": 2}}]
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.SUCCEEDED and result.output == {"ok": True}
    assert [c[0].attempt for c in coder.calls] == [1, 2, 3]
    assert [e.next_attempt for e in result.trace if isinstance(e, StepRetried)] == [2, 3]
    assert result.spent.tokens == 14 and result.iterations == 3


async def test_retries_spent_then_skip_gives_the_next_step_none() -> None:
    coder, judge = failing(5), FakeArm()
    steps = [
        {"id": "a", "arm": "coder", "on_failure": {"action": "retry", "retries": 1, "then": "skip"}},
        {"id": "b", "arm": "judge", "input": {"prev": "$steps.a.ok", "literal": "$$5"}},
    ]
    result = await Orchestrator(arms(coder=coder, judge=judge), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.SUCCEEDED
    assert len(coder.calls) == 2 and result.outputs["a"] is None
    assert judge.calls[0][0].data == {"prev": None, "literal": "$5"}
    assert [e.step_id for e in result.trace if isinstance(e, StepSkipped)] == ["a"]


async def test_abort_fails_the_run_with_the_partial_result() -> None:
    first, coder, judge = FakeArm(), failing(1), FakeArm()
    steps = [{"id": "a", "arm": "retriever"}, {"id": "b", "arm": "coder"}, {"id": "c", "arm": "judge"}]
    result = await Orchestrator(arms(retriever=first, coder=coder, judge=judge), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.FAILED
    assert result.reason == "step b failed (attempt 1): failure 1"
    assert list(result.outputs) == ["a"] and result.output is None and judge.calls == []


async def test_schema_invalid_output_and_failed_checks_are_failures() -> None:
    coder = FakeArm()
    steps = [
        {"id": "a", "arm": "coder", "output_schema": {"type": "object", "required": ["text"]}},
    ]
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.FAILED
    assert "output does not match output_schema: $: 'text' is a required property" in result.reason
    checked = [{"id": "a", "arm": "coder", "checks": [{"path": "echo.x", "op": "present"}]}]
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(plan(checked), {})
    assert result.status is RunStatus.FAILED and result.reason.endswith("checks failed: echo.x present")


async def test_an_arm_that_crashes_does_not_crash_the_run() -> None:
    async def boom(step: StepInput, budget: BudgetView) -> ArmResult:
        raise KeyError("bug")

    result = await Orchestrator(arms(coder=FakeArm(behaviour=boom)), clock=FakeClock()).run(
        plan([{"id": "a", "arm": "coder"}]), {}
    )
    assert result.status is RunStatus.FAILED and "KeyError" in result.reason


async def test_a_guardian_block_ends_the_run_blocked_before_the_next_step() -> None:
    async def refuse(step: StepInput, budget: BudgetView) -> ArmResult:
        raise ArmBlocked("prompt injection in the task")

    executor = FakeArm()
    steps: list[dict[str, Any]] = [
        {"id": "guard", "arm": "guardian", "on_failure": {"action": "retry", "retries": 3}},
        {"id": "run", "arm": "executor"},
    ]
    result = await Orchestrator(arms(guardian=FakeArm(behaviour=refuse), executor=executor), clock=FakeClock()).run(
        plan(steps), {}
    )
    assert result.status is RunStatus.BLOCKED  # a block is never retried
    assert result.reason == "step guard: prompt injection in the task"
    assert executor.calls == []


async def test_a_parallel_group_runs_concurrently_and_is_traced_in_step_order() -> None:
    arrived: list[str] = []
    both = asyncio.Event()

    async def meet(step: StepInput, budget: BudgetView) -> ArmResult:
        arrived.append(step.step_id)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)  # only returns if the other member runs meanwhile
        return ArmResult({"from": step.step_id}, Usage(tokens=10))

    retriever, coder = FakeArm(behaviour=meet), FakeArm()
    steps = [
        {"id": "docs", "arm": "retriever", "parallel": "fetch", "budget": {"max_tokens": 10}},
        {"id": "web", "arm": "retriever", "parallel": "fetch", "budget": {"max_tokens": 10}},
        {"id": "merge", "arm": "coder", "input": {"a": "$steps.docs.from", "b": "$steps.web.from"}},
    ]
    result = await Orchestrator(arms(retriever=retriever, coder=coder), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.SUCCEEDED
    assert coder.calls[0][0].data == {"a": "docs", "b": "web"}
    kinds = [(e.kind, getattr(e, "step_id", None)) for e in result.trace]
    assert kinds[:7] == [
        ("budget_check", None),
        ("breaker", "docs"),
        ("step_started", "docs"),
        ("breaker", "web"),
        ("step_started", "web"),
        ("step_finished", "docs"),
        ("step_finished", "web"),
    ]


async def test_a_parallel_group_is_reserved_as_a_whole() -> None:
    retriever = FakeArm()
    steps = [{"id": f"p{i}", "arm": "retriever", "parallel": "g", "budget": {"max_tokens": 100}} for i in range(3)]
    result = await Orchestrator(arms(retriever=retriever), clock=FakeClock()).run(
        plan(steps), {}, budget=RunBudget(max_tokens=250)
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED and retriever.calls == []
    assert result.reason == "tokens: 250 left, the next call reserves 300"


async def test_only_the_failed_member_of_a_group_is_retried() -> None:
    flaky, steady = failing(1), FakeArm()
    steps: list[dict[str, Any]] = [
        {"id": "f", "arm": "coder", "parallel": "g", "on_failure": {"action": "retry", "retries": 1}},
        {"id": "s", "arm": "retriever", "parallel": "g"},
    ]
    result = await Orchestrator(arms(coder=flaky, retriever=steady), clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.SUCCEEDED
    assert len(flaky.calls) == 2 and len(steady.calls) == 1 and result.iterations == 3


async def test_the_breaker_opens_after_consecutive_failures_and_closes_after_a_good_trial() -> None:
    clock = FakeClock()
    coder = failing(2)
    orchestrator = Orchestrator(arms(coder=coder), clock=clock, breaker_policy=BreakerPolicy(2, 30))
    steps = [{"id": "a", "arm": "coder", "on_failure": {"action": "retry", "retries": 3}}]
    result = await orchestrator.run(plan(steps), {})
    assert result.status is RunStatus.FAILED
    assert result.reason == "step a failed (attempt 4): circuit open for arm coder"
    assert len(coder.calls) == 2  # attempts 3 and 4 never reached the arm
    states = [e.state for e in result.trace if isinstance(e, BreakerChecked)]
    assert states == ["closed", "closed", "open", "open"]
    clock.t += 30
    assert orchestrator.breakers[ArmKind.CODER].state is ArmBreakerState.HALF_OPEN
    again = await orchestrator.run(plan(steps), {})
    assert again.status is RunStatus.SUCCEEDED and len(coder.calls) == 3
    assert orchestrator.breakers[ArmKind.CODER].state is ArmBreakerState.CLOSED


def test_a_failed_half_open_trial_opens_the_breaker_again() -> None:
    clock = FakeClock()
    breaker = ArmBreaker(1, 5, clock)
    breaker.record_failure()
    assert not breaker.allows()
    clock.t += 5
    assert breaker.allows() and breaker.state is ArmBreakerState.HALF_OPEN
    breaker.record_failure()
    assert not breaker.allows()
    with pytest.raises(ValueError):
        ArmBreaker(0, 1, clock)


async def test_cancel_mid_step_cancels_the_arm_task_and_keeps_the_partial_result() -> None:
    token = CancelToken()
    cancelled = asyncio.Event()

    async def long_job(step: StepInput, budget: BudgetView) -> ArmResult:
        token.cancel("stopped by the user")  # the cancel arrives while this step runs
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    retriever, judge = FakeArm(), FakeArm()
    steps = [{"id": "a", "arm": "retriever"}, {"id": "b", "arm": "executor"}, {"id": "c", "arm": "judge"}]
    result = await Orchestrator(
        arms(retriever=retriever, executor=FakeArm(behaviour=long_job), judge=judge), clock=FakeClock()
    ).run(plan(steps), {}, cancel=token)
    assert result.status is RunStatus.CANCELLED and result.reason == "stopped by the user"
    assert cancelled.is_set() and judge.calls == []
    assert list(result.outputs) == ["a"]
    finished = [e for e in result.trace if isinstance(e, StepFinished)]
    assert finished[-1].step_id == "b" and finished[-1].error == "stopped by the user"


async def test_a_cancel_between_steps_stops_at_the_next_boundary() -> None:
    token = CancelToken()

    async def then_cancel(step: StepInput, budget: BudgetView) -> ArmResult:
        token.cancel()
        return ArmResult({"done": True})

    judge = FakeArm()
    steps = [{"id": "a", "arm": "coder"}, {"id": "b", "arm": "judge"}]
    result = await Orchestrator(arms(coder=FakeArm(behaviour=then_cancel), judge=judge), clock=FakeClock()).run(
        plan(steps), {}, cancel=token
    )
    # The step that was running when the token was set may finish; nothing after it starts.
    assert result.status is RunStatus.CANCELLED and judge.calls == []
    assert sum(isinstance(e, StepStarted) for e in result.trace) == 1
