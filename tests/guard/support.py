"""Helpers of the guard tests."""

from __future__ import annotations

from bastion.guard.models import GuardResult, Verdict


def verdict_of(result: GuardResult, scanner: str) -> Verdict:
    """The verdict of ``scanner`` in ``result``, which the test expects to be there."""
    verdict = result.verdict(scanner)
    assert verdict is not None, f"no {scanner} verdict in {result.verdicts}"
    return verdict
