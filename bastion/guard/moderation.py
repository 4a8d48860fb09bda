"""The guard's input verdicts in the shape of OpenAI's moderation results.

OpenAI's moderation models classify harm (hate, harassment, self-harm, sexual content, violence,
illicit activity); Bastion's guard detects something else: prompt injection, personal data,
secrets and invisible text. A result therefore carries all thirteen OpenAI categories, which the
schema requires, as not flagged with a score of 0 and no input type they were applied to (Bastion
does not evaluate them), and Bastion's own verdicts under their own names (``bastion/...``), with
``flagged`` true when any of them flags.
"""

from __future__ import annotations

from typing import Any

from bastion.guard.models import GuardResult

#: OpenAI's categories (``CreateModerationResponse``), none of which Bastion detects.
OPENAI_CATEGORIES: tuple[str, ...] = (
    "hate",
    "hate/threatening",
    "harassment",
    "harassment/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: Guard scanner -> the category it is reported under. A scanner the caller's policy switches off
#: is reported as not flagged, score 0.
BASTION_CATEGORIES: dict[str, str] = {
    "injection": "bastion/prompt_injection",
    "pii": "bastion/pii",
    "secrets": "bastion/secret",
    "invisible": "bastion/invisible_text",
    "scan_budget": "bastion/scan_budget_exceeded",
}
#: The name Bastion answers with in ``model``, whatever model the request named.
MODERATION_MODEL = "bastion-guard"


def moderation_result(result: GuardResult) -> dict[str, Any]:
    """One entry of ``results`` for one input's guard result."""
    categories: dict[str, bool] = dict.fromkeys(OPENAI_CATEGORIES, False)
    scores: dict[str, float] = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    applied: dict[str, list[str]] = {name: [] for name in OPENAI_CATEGORIES}
    for scanner, name in BASTION_CATEGORIES.items():
        verdict = result.verdict(scanner)
        categories[name] = bool(verdict and verdict.flagged)
        scores[name] = round(float(verdict.score), 4) if verdict else 0.0
        applied[name] = ["text"] if verdict else []
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }
