"""What the guard keeps about one request: the policy in force, both sides' results, and the
system prompt (with its canary) that the output guard watches for.

Data only, so the request context can carry it without importing the scanners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.config.guard_policy import GuardPolicy
from bastion.guard.models import ACTION_RANK, Action, GuardResult, Verdict

#: What replaces an answer the output guard blocked (non-streamed: the whole content; streamed: the
#: last delta). Like ``BLOCKED_MESSAGE`` it says nothing about the prompt, the output or the rule.
WITHHELD_MESSAGE = "The response was withheld by policy."
#: OpenAI's finish reason for filtered output; the Anthropic renderers turn it into ``refusal``.
CONTENT_FILTER = "content_filter"


@dataclass(frozen=True, slots=True)
class PlantedPrompt:
    """The system prompt sent upstream and the canary planted in it, for leak detection.

    Never logged or recorded: ``repr`` hides the text from any careless log line."""

    system_prompt: str
    canary: str

    def __repr__(self) -> str:
        return "PlantedPrompt(<secret>)"

    __str__ = __repr__


@dataclass(slots=True)
class GuardState:
    """The policy in force for a request and what each side found.

    The ledger calls ``to_ledger()`` when it records the interaction, after both sides ran."""

    policy: GuardPolicy
    input: GuardResult | None = None
    output: GuardResult | None = None

    @property
    def flagged(self) -> bool:
        return any(result is not None and result.flagged for result in (self.input, self.output))

    def to_ledger(self) -> dict[str, Any]:
        action: Action = "allow"
        summary: dict[str, Any] = {}
        for side, result in (("input", self.input), ("output", self.output)):
            if result is None:
                continue
            if ACTION_RANK[result.action] > ACTION_RANK[action]:
                action = result.action
            summary[side] = result.to_ledger()
        return {"action": action, "flagged": self.flagged, **summary}


def combine(results: list[GuardResult]) -> GuardResult | None:
    """One result from several scans of one side (choices, tool-call arguments): per scanner the
    highest score, any flag, the most severe action and all findings."""
    if not results:
        return None
    if len(results) == 1:
        return results[0]
    merged: dict[str, Verdict] = {}
    action: Action = "allow"
    elapsed = 0.0
    for result in results:
        elapsed += result.elapsed_us
        if ACTION_RANK[result.action] > ACTION_RANK[action]:
            action = result.action
        for verdict in result.verdicts:
            current = merged.get(verdict.scanner)
            if current is None:
                merged[verdict.scanner] = Verdict(
                    verdict.scanner, verdict.score, verdict.flagged, list(verdict.findings), verdict.action
                )
                continue
            current.score = max(current.score, verdict.score)
            current.flagged = current.flagged or verdict.flagged
            current.findings.extend(verdict.findings)
            if ACTION_RANK[verdict.action] > ACTION_RANK[current.action]:
                current.action = verdict.action
    return GuardResult(action=action, text="", verdicts=list(merged.values()), elapsed_us=elapsed)
