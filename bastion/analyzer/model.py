"""Value types of the analyzer: the prompt it reads, the spans and findings it returns.

A finding never carries prompt text in its own fields: its message, rationale and suggestion come
from the pattern library, and where it applies is given as spans (part and character offsets).
Excerpts are cut from the text only when the caller may read the prompt (``Analysis.to_json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Part = Literal["system", "template"]
PARTS: tuple[Part, ...] = ("system", "template")
#: Longest excerpt shown for one span, in characters.
EXCERPT_CHARS = 160


@dataclass(frozen=True, slots=True)
class PromptText:
    """What is analysed: a system prompt, an optional user template (Jinja2, as the vault renders
    it), and optionally the variable names the application sends (``declared``)."""

    system: str
    template: str | None = None
    declared: tuple[str, ...] | None = None
    #: The model the prompt is for (token counts are exact when its tokenizer is ours).
    model: str | None = None

    def text(self, part: Part) -> str:
        return self.system if part == "system" else (self.template or "")

    def __repr__(self) -> str:
        return f"PromptText(model={self.model!r}, text=<redacted>)"


@dataclass(frozen=True, slots=True)
class Span:
    part: Part
    start: int
    end: int

    def to_json(self, prompt: PromptText | None) -> dict[str, Any]:
        out: dict[str, Any] = {"part": self.part, "start": self.start, "end": self.end}
        if prompt is not None:
            text = prompt.text(self.part)[self.start : self.end]
            out["excerpt"] = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    pattern_id: str
    pattern_version: int
    category: str
    title: str
    rationale: str
    suggestion: str
    confidence: float
    #: Estimated change in prompt tokens if the suggestion is applied (negative: saves tokens).
    token_delta: int
    spans: tuple[Span, ...] = ()
    #: A text-free detail (counts, thresholds), never words of the prompt.
    detail: str | None = None

    def to_json(self, prompt: PromptText | None) -> dict[str, Any]:
        return {
            "pattern_id": self.pattern_id,
            "pattern_version": self.pattern_version,
            "category": self.category,
            "title": self.title,
            "rationale": self.rationale,
            "suggestion": self.suggestion,
            "confidence": self.confidence,
            "token_delta": self.token_delta,
            "detail": self.detail,
            "spans": [span.to_json(prompt) for span in self.spans],
        }


@dataclass(frozen=True, slots=True)
class TokenReport:
    """Prompt tokens per part. ``exact``: counted with the model's own tokenizer; otherwise an
    estimate, with the true count between ``low`` and ``high`` (``bound``: relative error stated)."""

    system: int
    template: int
    exact: bool
    tokenizer: str
    bound: float

    @property
    def total(self) -> int:
        return self.system + self.template

    def to_json(self) -> dict[str, Any]:
        total = self.total
        return {
            "system": self.system,
            "template": self.template,
            "total": total,
            "exact": self.exact,
            "tokenizer": self.tokenizer,
            "bound": self.bound,
            "low": int(total * (1 - self.bound)),
            "high": int(total * (1 + self.bound) + 0.999),
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    library_version: str
    tokens: TokenReport
    findings: tuple[Finding, ...]
    #: Structure elements found (role, task, ...) -> where.
    structure: dict[str, tuple[Span, ...]] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def token_delta(self) -> int:
        return sum(finding.token_delta for finding in self.findings)

    def to_json(self, prompt: PromptText | None = None) -> dict[str, Any]:
        """JSON; with ``prompt``, each span carries its excerpt (only for callers who may read it)."""
        return {
            "object": "prompt.analysis",
            "library_version": self.library_version,
            "tokens": self.tokens.to_json(),
            "structure": {
                name: {"present": bool(spans), "spans": [span.to_json(prompt) for span in spans]}
                for name, spans in self.structure.items()
            },
            "findings": [finding.to_json(prompt) for finding in self.findings],
            "summary": {
                "findings": len(self.findings),
                "by_category": _count_by_category(self.findings),
                "token_delta": self.token_delta,
            },
            "excerpts": prompt is not None,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def _count_by_category(findings: tuple[Finding, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.category] = counts.get(finding.category, 0) + 1
    return counts
