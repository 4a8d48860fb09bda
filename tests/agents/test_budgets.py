"""Budgets stop a run exactly: iterations, wall time, tokens, cost and tool calls; a step's caps are
reserved before it starts, so the run never spends past its budget by more than one call."""

from __future__ import annotations

import asyncio

from bastion.agents.arms import ArmResult, StepInput
from bastion.agents.budget import BudgetView, RunBudget, Usage
from bastion.agents.orchestrator import Orchestrator, RunStatus
from bastion.agents.trace import BudgetChecked, RunEnded, StepStarted
from tests.agents.fakes import FakeArm, FakeClock, arms, plan


def chain(n: int, budget: dict[str, object] | None = None) -> list[dict[str, object]]:
    return [{"id": f"s{i}", "arm": "coder", "budget": budget or {}} for i in range(n)]


async def test_a_looping_plan_stops_after_exactly_max_iterations() -> None:
    coder = FakeArm()
    looping = plan([{"id": "again", "arm": "coder", "loop_to": "again"}])
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(
        looping, {}, budget=RunBudget(max_iterations=7)
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED
    assert "iterations: 7 of 7" in result.reason
    assert len(coder.calls) == 7 == result.iterations
    assert sum(isinstance(e, StepStarted) for e in result.trace) == 7
    assert result.outputs == {"again": {"echo": {}, "step": "again"}}  # the partial result


async def test_tokens_stop_before_the_call_that_would_not_fit() -> None:
    coder = FakeArm(usage=Usage(tokens=100))
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(
        plan(chain(5, {"max_tokens": 100})), {}, budget=RunBudget(max_tokens=250)
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED
    assert result.reason == "tokens: 50 left, the next call reserves 100"
    assert len(coder.calls) == 2 and result.spent.tokens == 200
    assert sorted(result.outputs) == ["s0", "s1"]


async def test_the_reservation_not_the_last_usage_decides() -> None:
    # Each call uses 60 of the 100 it reserves: after two calls 130 are left, which is enough for
    # one more reservation but not two; the run stops with 180 spent, never above the budget.
    coder = FakeArm(usage=Usage(tokens=60))
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(
        plan(chain(5, {"max_tokens": 100})), {}, budget=RunBudget(max_tokens=250)
    )
    assert len(coder.calls) == 3 and result.spent.tokens == 180
    assert result.spent.tokens <= 250
    # The arm sees its cap and what remains of the run after its reservation.
    _, view = coder.calls[1]
    assert view.max_tokens == 100 and view.remaining.tokens == 250 - 60 - 100


async def test_an_arm_overspending_its_reservation_overshoots_by_at_most_that_call() -> None:
    coder = FakeArm(usage=Usage(tokens=180))
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(
        plan(chain(5, {"max_tokens": 100})), {}, budget=RunBudget(max_tokens=300)
    )
    # 120 left after the first call: the second reservation fits; after it nothing is left.
    assert len(coder.calls) == 2 and result.status is RunStatus.BUDGET_EXHAUSTED
    assert result.spent.tokens == 360 and result.spent.tokens - 300 <= 180
    assert result.reason == "tokens: -60 left, the next call reserves 100"


async def test_cost_is_checked_and_reserved() -> None:
    coder = FakeArm(usage=Usage(cost_usd=0.03))
    result = await Orchestrator(arms(coder=coder), clock=FakeClock()).run(
        plan(chain(10, {"max_cost_usd": 0.05})), {}, budget=RunBudget(max_cost_usd=0.2)
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED and result.reason.startswith("cost:")
    # 0.2 - 4 x 0.03 = 0.08 >= 0.05: a fifth call fits; after it 0.05 left: a sixth fits exactly.
    assert len(coder.calls) == 6
    assert result.spent.cost_usd <= 0.2 + 1e-9


async def test_tool_calls_are_checked_and_reserved() -> None:
    executor = FakeArm(usage=Usage(tool_calls=1))
    result = await Orchestrator(arms(executor=executor), clock=FakeClock()).run(
        plan([{"id": f"x{i}", "arm": "executor", "budget": {"max_tool_calls": 2}} for i in range(6)]),
        {},
        budget=RunBudget(max_tool_calls=4),
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED
    assert result.reason == "tool calls: 1 left, the next step reserves 2"
    assert len(executor.calls) == 3 and result.spent.tool_calls == 3


async def test_wall_time_on_the_injected_clock() -> None:
    clock = FakeClock()

    async def slow(step: StepInput, budget: BudgetView) -> ArmResult:
        clock.t += 10
        return ArmResult({"done": step.step_id})

    coder = FakeArm(behaviour=slow)
    result = await Orchestrator(arms(coder=coder), clock=clock).run(plan(chain(6)), {}, budget=RunBudget(max_wall_s=25))
    assert result.status is RunStatus.BUDGET_EXHAUSTED
    assert result.reason == "wall time: 30.000 s of 25.0 s elapsed"
    assert len(coder.calls) == 3
    checks = [e for e in result.trace if isinstance(e, BudgetChecked)]
    assert [c.remaining.wall_s for c in checks] == [25.0, 15.0, 5.0, -5.0]
    assert isinstance(result.trace[-1], RunEnded) and result.trace[-1].at_s == 30.0


async def test_a_step_that_hangs_is_stopped_at_the_wall_time_limit() -> None:
    started = asyncio.Event()
    was_cancelled = asyncio.Event()

    async def hang(step: StepInput, budget: BudgetView) -> ArmResult:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            was_cancelled.set()
            raise
        raise AssertionError("unreachable")

    loop = asyncio.get_running_loop()
    begin = loop.time()
    result = await Orchestrator(arms(coder=FakeArm(behaviour=hang))).run(
        plan(chain(1, {"max_tokens": 10})), {}, budget=RunBudget(max_wall_s=0.2)
    )
    assert result.status is RunStatus.BUDGET_EXHAUSTED and result.reason == "wall time: 0.2 s"
    assert was_cancelled.is_set()
    assert loop.time() - begin < 1.2
    assert result.spent.tokens == 10  # an interrupted call is charged its reservation


def test_a_callers_budget_is_capped_by_a_policy_limit_by_limit() -> None:
    asked = RunBudget(max_iterations=50, max_wall_s=10, max_tokens=100, max_cost_usd=5, max_tool_calls=1)
    policy = RunBudget(max_iterations=20, max_wall_s=60, max_tokens=1000, max_cost_usd=0.5, max_tool_calls=3)
    assert asked.capped_by(policy) == RunBudget(
        max_iterations=20, max_wall_s=10, max_tokens=100, max_cost_usd=0.5, max_tool_calls=1
    )
