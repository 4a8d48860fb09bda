"""The safety guardian: Bastion's guard on every arm's input and output, fail-closed.

:class:`ArmGuard` is what the other arms call: ``inbound`` before an arm acts (a blocked text stops
the step with :class:`ArmBlocked`: no model call, no process), ``outbound`` on what an arm hands
on (secrets and the like are redacted before the next model call sees them; a block stops the
run). A guard that cannot scan (a detector error) blocks too. :class:`GuardianArm` is the plan
step that scans a text on its own (``{text}`` in, ``{text, action, findings}`` out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from bastion.agents.arms import ArmBlocked, ArmResult, StepInput
from bastion.agents.budget import BudgetView
from bastion.agents.dispatch import TokenGate
from bastion.config.guard_policy import GuardPolicy
from bastion.guard.engine import InputGuard
from bastion.guard.models import GuardResult

log = structlog.get_logger("bastion.agents.guardian")


@dataclass(frozen=True, slots=True)
class Screened:
    text: str
    action: str
    findings: list[str]


class ArmGuard:
    """The guard under one policy (the run owner's), applied to arm inputs and outputs."""

    def __init__(self, policy: GuardPolicy | None = None, *, enabled: bool = True) -> None:
        self.policy = policy or GuardPolicy()
        # Commands and files are code, not instructions to a model: the injection detector would
        # read every script as an attack; secrets, PII and invisible text are still caught.
        self.code_policy = self.policy.model_copy(update={"injection": "off"})
        self.enabled = enabled

    def screen(self, text: str, where: str, *, code: bool = False) -> Screened:
        """``text`` as it may travel on (redacted), or :class:`ArmBlocked` if the guard refuses it."""
        if not self.enabled or not text:
            return Screened(text, "allow", [])
        try:
            policy = self.code_policy if code else self.policy
            result: GuardResult = InputGuard.for_policy(policy).scan_text(text)
        except Exception as exc:  # fail closed: an unscanned text does not travel
            log.exception("guardian_scan_failed", where=where)
            raise ArmBlocked(f"{where}: the guard could not scan it ({type(exc).__name__})") from None
        findings = sorted({v.scanner for v in result.verdicts if v.flagged})
        if result.blocked:
            raise ArmBlocked(f"{where}: blocked by the guard ({', '.join(findings) or 'policy'})")
        return Screened(result.text, result.action, findings)

    def inbound(self, value: Any, where: str, *, code: bool = False) -> None:
        """Refuse (ArmBlocked) an arm input the guard blocks; nothing is done with it otherwise."""
        self.screen(_text_of(value), where, code=code)

    def outbound(self, text: str, where: str) -> str:
        """An arm's textual output, redacted; blocked outputs stop the run."""
        return self.screen(text, where).text


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class GuardianArm:
    """A plan step that runs the guard on ``input.text`` and passes on the (redacted) text."""

    def __init__(self, guard: ArmGuard, gate: TokenGate) -> None:
        self.guard = guard
        self.gate = gate

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult:
        self.gate.check(token)
        screened = self.guard.screen(_text_of(step.data.get("text", step.data)), f"step {step.step_id} input")
        return ArmResult({"text": screened.text, "action": screened.action, "findings": screened.findings})
