"""A run's budget: limits, what is spent, what is reserved, and the check made before every step.

A step reserves its caps (``max_tokens`` of the model call, cost, tool calls) before it starts; the
reservation is replaced by the actual usage when it ends. So a run can exceed a limit only when an
arm reports more than it reserved, and then by at most that one call."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class RunBudget(BaseModel):
    """The limits of one run. Every run has an iteration limit: no loop is unbounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iterations: int = Field(default=20, ge=1, le=1000)
    max_wall_s: float = Field(default=300.0, gt=0, le=86_400)
    max_tokens: int = Field(default=50_000, ge=0)
    max_cost_usd: float = Field(default=1.0, ge=0)
    max_tool_calls: int = Field(default=20, ge=0)

    def capped_by(self, limit: RunBudget) -> RunBudget:
        """Each limit the smaller of this budget's and ``limit``'s (a caller's budget under a policy)."""
        return RunBudget(
            max_iterations=min(self.max_iterations, limit.max_iterations),
            max_wall_s=min(self.max_wall_s, limit.max_wall_s),
            max_tokens=min(self.max_tokens, limit.max_tokens),
            max_cost_usd=min(self.max_cost_usd, limit.max_cost_usd),
            max_tool_calls=min(self.max_tool_calls, limit.max_tool_calls),
        )


class StepBudget(BaseModel):
    """What one attempt of a step may use; reserved from the run's budget before the attempt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=0, ge=0)
    max_cost_usd: float = Field(default=0.0, ge=0)
    max_tool_calls: int = Field(default=0, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)


@dataclass(frozen=True, slots=True)
class Usage:
    tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.tokens + other.tokens, self.cost_usd + other.cost_usd, self.tool_calls + other.tool_calls)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.tokens - other.tokens, self.cost_usd - other.cost_usd, self.tool_calls - other.tool_calls)


def reservation(step: StepBudget) -> Usage:
    return Usage(step.max_tokens, step.max_cost_usd, step.max_tool_calls)


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left of a run's budget at one moment (reservations already taken off)."""

    iterations: int
    wall_s: float
    tokens: int
    cost_usd: float
    tool_calls: int


@dataclass(frozen=True, slots=True)
class BudgetView:
    """What an arm sees: its own caps for this attempt and what remains of the run after them."""

    max_tokens: int
    max_cost_usd: float
    max_tool_calls: int
    deadline_s: float
    remaining: Remaining


class BudgetTracker:
    """Spent and reserved amounts of one run; ``elapsed`` comes from the orchestrator's clock."""

    def __init__(self, budget: RunBudget) -> None:
        self.budget = budget
        self.iterations = 0
        self.spent = Usage()
        self.reserved = Usage()

    def remaining(self, elapsed_s: float) -> Remaining:
        used = self.spent + self.reserved
        b = self.budget
        return Remaining(
            iterations=b.max_iterations - self.iterations,
            wall_s=round(b.max_wall_s - elapsed_s, 6),
            tokens=b.max_tokens - used.tokens,
            cost_usd=round(b.max_cost_usd - used.cost_usd, 9),
            tool_calls=b.max_tool_calls - used.tool_calls,
        )

    def shortfall(self, attempts: int, need: Usage, elapsed_s: float) -> str | None:
        """Why ``attempts`` more step attempts reserving ``need`` in all cannot start, or None."""
        left = self.remaining(elapsed_s)
        if left.iterations < attempts:
            return f"iterations: {self.iterations} of {self.budget.max_iterations} used, {attempts} more needed"
        if left.wall_s <= 0:
            return f"wall time: {elapsed_s:.3f} s of {self.budget.max_wall_s} s elapsed"
        if left.tokens < need.tokens:
            return f"tokens: {left.tokens} left, the next call reserves {need.tokens}"
        if left.cost_usd + 1e-12 < need.cost_usd:
            return f"cost: {left.cost_usd} USD left, the next call reserves {need.cost_usd} USD"
        if left.tool_calls < need.tool_calls:
            return f"tool calls: {left.tool_calls} left, the next step reserves {need.tool_calls}"
        return None

    def reserve(self, attempts: int, need: Usage) -> None:
        self.iterations += attempts
        self.reserved = self.reserved + need

    def settle(self, reserved: Usage, actual: Usage) -> None:
        self.reserved = self.reserved - reserved
        self.spent = self.spent + actual
