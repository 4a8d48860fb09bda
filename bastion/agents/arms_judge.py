"""The judge arm: deterministic checks, each one named in the reasons when it fails.

Whatever the input carries is checked: ``result`` (a command's: exit code 0, and a test runner's
summary without failures), ``answer`` with ``passages`` and ``require_citations`` (at least one
citation, each naming a passage), ``value`` with ``schema`` (JSON Schema). The output is
``{passed, reasons, checks}``; no model is involved, so the same input always gets the same
verdict."""

from __future__ import annotations

import re
from typing import Any

from bastion.agents.arms import ArmError, ArmResult, StepInput
from bastion.agents.budget import BudgetView
from bastion.agents.dispatch import TokenGate
from bastion.agents.plan import schema_errors

# pytest's and unittest's summaries: "3 passed, 1 failed", "FAILED (failures=2)", "2 errors".
_FAILURES = re.compile(r"\b(\d+) (failed|errors?)\b|\bFAILED \((?:failures|errors)=\d+")
_PASSES = re.compile(r"\b(\d+) passed\b|^OK\b", re.MULTILINE)


def judge(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The checks made on ``data`` and the reasons of those that failed."""
    checks: list[str] = []
    reasons: list[str] = []
    if "result" in data:
        checks.append("exit_code")
        reasons += _command_reasons(data["result"])
    if "answer" in data and data.get("require_citations"):
        checks.append("citations")
        reasons += _citation_reasons(data["answer"], data.get("passages"))
    if "schema" in data:
        checks.append("schema")
        schema = data["schema"]
        if not isinstance(schema, dict):
            reasons.append("schema: not a JSON Schema object")
        else:
            reasons += [f"schema: {e}" for e in schema_errors(data.get("value"), schema)]
    return checks, reasons


def _command_reasons(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return ["result: no command result (the command did not run)"]
    code = result.get("exit_code")
    out = f"{result.get('stdout') or ''}\n{result.get('stderr') or ''}"
    reasons = [] if code == 0 else [f"exit code {code}"]
    failures = [m for m in _FAILURES.finditer(out) if not m.group(1) or int(m.group(1)) > 0]
    if failures:
        reasons.append(f"tests failed: {failures[0].group(0)}")
    elif code == 0 and result.get("require_tests") and not _PASSES.search(out):
        reasons.append("no test ran")
    return reasons


def _citation_reasons(answer: Any, passages: Any) -> list[str]:
    if not isinstance(answer, dict):
        return ["answer: missing"]
    citations = answer.get("citations")
    if not isinstance(citations, list) or not citations:
        return ["citations: none given"]
    known = {str(p.get("id")) for p in passages or [] if isinstance(p, dict)}
    unknown = [str(c) for c in citations if str(c) not in known]
    return [f"citations: {', '.join(unknown)} name no retrieved passage"] if unknown else []


class JudgeArm:
    def __init__(self, gate: TokenGate) -> None:
        self.gate = gate

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult:
        self.gate.check(token)
        checks, reasons = judge(step.data)
        if not checks:
            raise ArmError("nothing to judge: give result, answer with require_citations, or value with schema")
        return ArmResult({"passed": not reasons, "reasons": reasons, "checks": checks})
