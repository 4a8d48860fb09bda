"""Fake arms and a fake clock for the orchestrator's tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.agents.arms import ArmKind, ArmResult, StepInput
from bastion.agents.budget import BudgetView, Usage
from bastion.agents.plan import Plan, plan_from_data


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


Behaviour = Callable[[StepInput, BudgetView], Awaitable[ArmResult]]


@dataclass
class FakeArm:
    """Calls ``behaviour`` (default: echo the input, charge ``usage``); keeps every call."""

    usage: Usage = field(default_factory=Usage)
    behaviour: Behaviour | None = None
    calls: list[tuple[StepInput, BudgetView]] = field(default_factory=list)

    async def run(self, step: StepInput, budget: BudgetView) -> ArmResult:
        self.calls.append((step, budget))
        if self.behaviour is not None:
            return await self.behaviour(step, budget)
        return ArmResult({"echo": step.data, "step": step.step_id}, self.usage)


def plan(steps: list[dict[str, Any]], **extra: Any) -> Plan:
    return plan_from_data({"version": 1, "name": "test-plan", "steps": steps, **extra})


def arms(**by_kind: FakeArm) -> dict[ArmKind, FakeArm]:
    return {ArmKind(kind): arm for kind, arm in by_kind.items()}
