"""Result types shared by every scanner: findings, per-scanner verdicts and the guard's result.

These are plain slotted dataclasses rather than pydantic models: a request builds dozens of them and
construction cost matters on the hot path. ``GuardResult.to_ledger`` is the only shape meant for
logs and the ledger; it carries types, counts and scores, never matched text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["allow", "flag", "redact", "block"]

#: What a client sees when the guard blocks: nothing about the prompt, the output or the rule.
BLOCKED_MESSAGE = "The request was blocked by the gateway's content policy."

#: Severity order used to combine actions: the most severe action wins.
ACTION_RANK: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


@dataclass(slots=True, frozen=True)
class Finding:
    """One detection: what kind, where (character offsets into the scanned text) and how sure.

    ``message_index``/``part_index`` locate the finding when a list of chat messages was scanned.
    """

    type: str
    start: int
    end: int
    score: float = 1.0
    message_index: int | None = None
    part_index: int | None = None


@dataclass(slots=True)
class Verdict:
    """One scanner's opinion of one text (or of all scanned messages)."""

    scanner: str
    score: float
    flagged: bool
    findings: list[Finding] = field(default_factory=list)
    #: The action the policy attached to this scanner when it flagged ("allow" when it did not).
    action: Action = "allow"

    def to_ledger(self) -> dict[str, Any]:
        # Most verdicts find nothing; skip the Counter for them (this runs for every scanner of
        # every request the ledger records).
        findings = dict(sorted(Counter(f.type for f in self.findings).items())) if self.findings else {}
        return {"score": round(self.score, 4), "flagged": self.flagged, "action": self.action, "findings": findings}


@dataclass(slots=True)
class GuardResult:
    """The outcome of a guard run.

    ``text`` is the text to forward: redacted when a redacting scanner flagged, otherwise the input.
    For a message scan, ``messages`` holds redacted copies of the messages (or the originals when
    nothing was redacted) and ``text`` is empty.
    """

    action: Action
    text: str
    verdicts: list[Verdict] = field(default_factory=list)
    messages: list[dict[str, Any]] | None = None
    #: Wall time spent scanning, in microseconds (for metrics; not part of the verdict).
    elapsed_us: float = 0.0

    @property
    def flagged(self) -> bool:
        return any(v.flagged for v in self.verdicts)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def redacted(self) -> bool:
        return self.action == "redact" or (self.action == "block" and any(v.action == "redact" for v in self.verdicts))

    def verdict(self, scanner: str) -> Verdict | None:
        for verdict in self.verdicts:
            if verdict.scanner == scanner:
                return verdict
        return None

    def to_ledger(self) -> dict[str, Any]:
        """A JSON-safe summary for logs and the ledger: no matched text, no offsets."""
        return {
            "action": self.action,
            "flagged": self.flagged,
            "scanners": {v.scanner: v.to_ledger() for v in self.verdicts},
        }
