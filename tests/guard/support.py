"""Helpers of the guard tests."""

from __future__ import annotations

from bastion.guard.injection import InjectionDetector
from bastion.guard.models import GuardResult, Verdict

#: The injection rules alone (no learned model): what the rule tests assert on.
RULES_ONLY = InjectionDetector(use_model=False)


def verdict_of(result: GuardResult, scanner: str) -> Verdict:
    """The verdict of ``scanner`` in ``result``, which the test expects to be there."""
    verdict = result.verdict(scanner)
    assert verdict is not None, f"no {scanner} verdict in {result.verdicts}"
    return verdict


def fired_rules(text: str) -> set[str]:
    """The names of the injection rules (and signals) that fire on ``text``, rules alone."""
    return {finding.type for finding in RULES_ONLY.scan(text).findings}
