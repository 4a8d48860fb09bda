"""What a plan may ask for: allowed arms, a ceiling on the run's and each step's budget, a number
of steps. A plan written by a model (the ``delegate`` planner mode) must parse as a plan and pass
the policy, or the run falls back to a template; the reason is kept for the trace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.agents.arms import ArmKind
from bastion.agents.budget import RunBudget
from bastion.agents.plan import Plan, PlanError, plan_from_data


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    allowed_arms: frozenset[ArmKind] = field(default_factory=lambda: frozenset(ArmKind))
    max_budget: RunBudget = field(default_factory=RunBudget)
    max_steps: int = 20


def policy_violations(plan: Plan, policy: PlanPolicy) -> list[str]:
    """Everything in ``plan`` that ``policy`` does not allow (empty: the plan may run)."""
    problems: list[str] = []
    if len(plan.steps) > policy.max_steps:
        problems.append(f"{len(plan.steps)} steps, at most {policy.max_steps} allowed")
    for step in plan.steps:
        if step.arm not in policy.allowed_arms:
            problems.append(f"step {step.id}: arm {step.arm.value} is not allowed")
    ceiling = policy.max_budget
    for name in RunBudget.model_fields:
        asked, limit = getattr(plan.budget, name), getattr(ceiling, name)
        if asked > limit:
            problems.append(f"budget.{name} {asked} exceeds {limit}")
    for step in plan.steps:
        caps = {
            "max_tokens": (step.budget.max_tokens, ceiling.max_tokens),
            "max_cost_usd": (step.budget.max_cost_usd, ceiling.max_cost_usd),
            "max_tool_calls": (step.budget.max_tool_calls, ceiling.max_tool_calls),
        }
        problems += [f"step {step.id}: budget.{k} {a} exceeds {lim}" for k, (a, lim) in caps.items() if a > lim]
    return problems


def delegated_or_fallback(data: Any, policy: PlanPolicy, fallback: Plan) -> tuple[Plan, str | None]:
    """The model-written plan ``data`` if it is a valid plan within ``policy``; else ``fallback``
    and why the written plan was refused."""
    try:
        plan = plan_from_data(data, "delegated plan")
    except PlanError as exc:
        return fallback, str(exc)
    problems = policy_violations(plan, policy)
    if problems:
        return fallback, "delegated plan: " + "; ".join(problems)
    return plan, None
