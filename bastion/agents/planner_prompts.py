"""What the planner modes ask a model: the messages and the JSON Schemas its answers must follow.

The task is the user's text: it goes in the user message only (never in the system prompt), cut
to ``MAX_TASK_CHARS`` so that a prompt fits a small model's context."""

from __future__ import annotations

import json
from typing import Any

from bastion.agents.arms import ArmKind
from bastion.agents.plan import PLAN_FORMAT_VERSION, Plan
from bastion.agents.policy import PlanPolicy
from bastion.agents.slots import Slot

MAX_TASK_CHARS = 1500
#: The id and name pattern of the plan format, as a grammar can enforce it (anchored).
_ID_PATTERN = "^[a-z][a-z0-9_-]{0,30}$"

ARM_ROLES: dict[ArmKind, str] = {
    ArmKind.PLANNER: "breaks a task into sub-tasks",
    ArmKind.RETRIEVER: "finds passages in a knowledge collection (input: query, collection, top_k)",
    ArmKind.CODER: "writes text or code with a language model",
    ArmKind.EXECUTOR: "runs code and its tests in a sandbox (input: files, tests)",
    ArmKind.JUDGE: "checks an output and answers passed: true or false",
    ArmKind.GUARDIAN: "screens text for attacks and secrets",
}


def task_message(task: str | None) -> dict[str, Any]:
    text = (task or "").strip()[:MAX_TASK_CHARS]
    return {"role": "user", "content": text or "(no task given)"}


def choice_schema(names: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"template": {"enum": names}},
        "required": ["template"],
        "additionalProperties": False,
    }


def choice_messages(templates: list[Plan], task: str | None) -> list[dict[str, Any]]:
    listing = "\n".join(f"- {plan.name}: {plan.description}" for plan in templates)
    system = (
        "Choose the plan template that best fits the user's task. Templates:\n"
        f'{listing}\nReply with a JSON object: {{"template": <one of the names>}}.'
    )
    return [{"role": "system", "content": system}, task_message(task)]


def slot_messages(plan: Plan, slots: list[Slot], task: str | None) -> list[dict[str, Any]]:
    lines = []
    for slot in slots:
        kind = slot.grammar.get("type") or "one of " + json.dumps(slot.grammar.get("enum"))
        about = slot.schema.get("description") or slot.schema.get("title") or ""
        lines.append(f"- {slot.name} ({kind}){': ' + about if about else ''}")
    system = (
        f"Fill the input of the plan {plan.name!r} ({plan.description}) from the user's task.\n"
        "Reply with a JSON object with these keys:\n" + "\n".join(lines)
    )
    return [{"role": "system", "content": system}, task_message(task)]


def plan_schema(policy: PlanPolicy) -> dict[str, Any]:
    """A reduced JSON Schema of the plan format (no loops, parallel groups or step schemas), with
    the policy's arms and ceilings in it. What the model writes is still validated in full."""
    ceiling = policy.max_budget
    limits: dict[str, Any] = {
        "max_tokens": {"type": "integer", "minimum": 0, "maximum": ceiling.max_tokens},
        "max_cost_usd": {"type": "number", "minimum": 0, "maximum": ceiling.max_cost_usd},
        "max_tool_calls": {"type": "integer", "minimum": 0, "maximum": ceiling.max_tool_calls},
    }
    caps = {"type": "object", "properties": limits, "additionalProperties": False}
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": _ID_PATTERN},
            "arm": {"enum": sorted(arm.value for arm in policy.allowed_arms)},
            "input": {"type": "object", "additionalProperties": {"type": "string"}},
            "budget": caps,
        },
        "required": ["id", "arm", "input"],
        "additionalProperties": False,
    }
    budget = {
        "type": "object",
        "properties": {
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": ceiling.max_iterations},
            **limits,
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "version": {"const": PLAN_FORMAT_VERSION},
            "name": {"type": "string", "pattern": _ID_PATTERN},
            "description": {"type": "string", "maxLength": 200},
            "budget": budget,
            "steps": {"type": "array", "items": step, "minItems": 1, "maxItems": policy.max_steps},
        },
        "required": ["version", "name", "steps"],
        "additionalProperties": False,
    }


def plan_messages(policy: PlanPolicy, fallback: Plan, task: str | None) -> list[dict[str, Any]]:
    arms = "\n".join(f"- {arm.value}: {ARM_ROLES[arm]}" for arm in ArmKind if arm in policy.allowed_arms)
    keys = ", ".join(sorted((fallback.input_schema.get("properties") or {}).keys())) or "none"
    system = (
        f"Write a plan (format version {PLAN_FORMAT_VERSION}) for the user's task as a JSON object: a name, "
        f"and at most {policy.max_steps} steps, each with an id, an arm and an input. Arms:\n{arms}\n"
        "A step's input may use the run's input as \"$input.<key>\" and an earlier step's output as "
        f'"$steps.<id>.<key>". The run\'s input keys: {keys}.'
    )
    return [{"role": "system", "content": system}, task_message(task)]
