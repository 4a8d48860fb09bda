"""The coder and planner arms: a model reached through the gateway, answering JSON under a schema.

The prompt is the step's input as JSON, screened by the guard first (redacted: a secret that a
tool printed never reaches the model); the answer is screened too, then parsed and returned. Each
call asks for at most the step's ``max_tokens`` (what the orchestrator reserved) and reports the
tokens and cost it used."""

from __future__ import annotations

import json
from typing import Any, Protocol

from bastion.agents.arms import ArmError, ArmResult, StepInput
from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.budget import BudgetView, Usage
from bastion.agents.dispatch import TokenGate


class JsonModel(Protocol):
    """A model reached through the gateway as the run's owner (the shape planners use too)."""

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]: ...


ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text", "citations"],
    "properties": {"text": {"type": "string"}, "citations": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False,
}
FILES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["files"],
    "properties": {"files": {"type": "object", "additionalProperties": {"type": "string"}}},
    "additionalProperties": False,
}
OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}

_ANSWER_PROMPT = (
    "Answer the question using only the passages. Cite the ids of the passages you used in "
    "`citations`. Reply with JSON only."
)
_CODE_PROMPT = (
    "Write the files that accomplish the task, as a JSON object mapping relative paths to file "
    "contents. If feedback from a previous attempt is given, fix what it reports. Reply with JSON only."
)
_PLAN_PROMPT = "Plan the task as a JSON object. Reply with JSON only."


def task_shape(kind: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The system prompt and answer schema for a step: ``data.schema`` when the plan gives one,
    else by what the input carries (passages: a cited answer; a task for the coder: files)."""
    if isinstance(data.get("schema"), dict):
        return _PLAN_PROMPT if kind == "planner" else _CODE_PROMPT, data["schema"]
    if kind == "planner":
        return _PLAN_PROMPT, OBJECT_SCHEMA
    if "passages" in data:
        return _ANSWER_PROMPT, ANSWER_SCHEMA
    return _CODE_PROMPT, FILES_SCHEMA


class ModelArm:
    """The coder (``kind="coder"``) or the planner (``kind="planner"``)."""

    def __init__(self, kind: str, model: JsonModel, guard: ArmGuard, gate: TokenGate, *, seed: int | None = None):
        self.kind = kind
        self.model = model
        self.guard = guard
        self.gate = gate
        self.seed = seed

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult:
        self.gate.check(token, resource="model", values=("gateway",))
        if budget.max_tokens < 1:
            raise ArmError("the step's budget reserves no tokens for a model call")
        where = f"step {step.step_id}"
        system, schema = task_shape(self.kind, step.data)
        data = {k: v for k, v in step.data.items() if k != "schema"}
        prompt = self.guard.outbound(
            json.dumps(data, sort_keys=True, ensure_ascii=False, default=str), f"{where} prompt"
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        text, usage = await self.model.complete_json(messages, schema, max_tokens=budget.max_tokens, seed=self.seed)
        answer = self.guard.outbound(text, f"{where} answer")
        try:
            output = json.loads(answer)
        except ValueError:
            raise ArmError("the model's answer is not JSON", usage) from None
        if not isinstance(output, dict):
            raise ArmError("the model's answer is not a JSON object", usage)
        return ArmResult(output, usage)
