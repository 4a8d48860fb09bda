"""A plan written by a model runs only if it is a valid plan within the policy; else the template."""

from __future__ import annotations

from typing import Any

from bastion.agents.arms import ArmKind
from bastion.agents.budget import RunBudget
from bastion.agents.policy import PlanPolicy, delegated_or_fallback, policy_violations
from bastion.agents.templates import get_template

POLICY = PlanPolicy(
    allowed_arms=frozenset({ArmKind.RETRIEVER, ArmKind.CODER, ArmKind.JUDGE}),
    max_budget=RunBudget(max_iterations=10, max_tokens=5000, max_cost_usd=0.5, max_tool_calls=2),
    max_steps=3,
)


def written(steps: list[dict[str, Any]], budget: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "written",
        "steps": steps,
        "budget": budget or {"max_iterations": 5, "max_tokens": 1000, "max_cost_usd": 0.1, "max_tool_calls": 1},
    }


def test_a_valid_plan_within_the_policy_is_used() -> None:
    fallback = get_template("answer-with-citations")
    plan, why = delegated_or_fallback(written([{"id": "a", "arm": "coder"}]), POLICY, fallback)
    assert why is None and plan.name == "written"


def test_an_invalid_plan_falls_back_with_the_parse_error() -> None:
    fallback = get_template("answer-with-citations")
    plan, why = delegated_or_fallback({"steps": "do everything"}, POLICY, fallback)
    assert plan is fallback and why is not None and why.startswith("delegated plan: version: Field required")


def test_arms_budgets_and_length_outside_the_policy_fall_back() -> None:
    fallback = get_template("answer-with-citations")
    data = written(
        [
            {"id": "a", "arm": "executor"},
            {"id": "b", "arm": "coder", "budget": {"max_tokens": 9000}},
            {"id": "c", "arm": "judge"},
            {"id": "d", "arm": "judge"},
        ],
        {"max_iterations": 50},
    )
    plan, why = delegated_or_fallback(data, POLICY, fallback)
    assert plan is fallback
    assert why == (
        "delegated plan: 4 steps, at most 3 allowed; step a: arm executor is not allowed; "
        "budget.max_iterations 50 exceeds 10; "
        "budget.max_tokens 50000 exceeds 5000; budget.max_cost_usd 1.0 exceeds 0.5; "
        "budget.max_tool_calls 20 exceeds 2; step b: budget.max_tokens 9000 exceeds 5000"
    )


def test_the_shipped_templates_pass_the_default_policy() -> None:
    for name in ("answer-with-citations", "code-until-tests-pass"):
        assert policy_violations(get_template(name), PlanPolicy()) == []
