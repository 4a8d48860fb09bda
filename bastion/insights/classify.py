"""From a ledger row to what the roll-ups count: its outcome, its guard findings per category,
whether the cache answered it, and its experiment arm."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

#: Cache outcomes (``extra.cache``, set by the cache stage) that answered without an upstream call.
CACHE_HITS: Final = frozenset({"hit", "semantic-hit"})
BLOCKED_CODES: Final = frozenset({"content_blocked"})
#: Width of the roll-ups' ``arm`` column: an experiment id (32) and a variant name (64).
WIDTH_ARM: Final = 97


def outcome(status: int, error_code: str | None, finish_reason: str | None, guard: Any) -> str:
    """``blocked`` (the guard blocked the request or withheld the answer), ``error`` (any other
    answer of status 400 or more), ``truncated`` (the answer stopped at its token limit) or ``ok``."""
    action = guard.get("action") if isinstance(guard, dict) else None
    if error_code in BLOCKED_CODES or action == "block" or finish_reason == "content_filter":
        return "blocked"
    if status >= 400:
        return "error"
    if finish_reason == "length":
        return "truncated"
    return "ok"


def red_team(extra: Any) -> bool:
    """An attempt of a red-team run (``extra.redteam_run``, set by the gateway, never by a client):
    measured by its run's report, and left out of the roll-ups and drift so attacks do not count
    as production errors, blocks or answers."""
    return isinstance(extra, dict) and bool(extra.get("redteam_run"))


def cache_hit(extra: Any) -> bool:
    return isinstance(extra, dict) and extra.get("cache") in CACHE_HITS


def arm(experiment_id: Any, variant: Any) -> str:
    """``<experiment id>:<variant>`` from the ledger's experiment columns (the experiment stage);
    ``''`` for a request in no experiment."""
    if not experiment_id or not variant:
        return ""
    return f"{experiment_id}:{variant}"[:WIDTH_ARM]


def guard_findings(guard: Any) -> Iterator[tuple[str, str, int, bool]]:
    """(side, category, findings, blocked) for every scanner that flagged, per side (``input``,
    ``output``). The category is the scanner's name (``injection``, ``pii``, ``secrets``, ...)."""
    if not isinstance(guard, dict):
        return
    for side in ("input", "output"):
        result = guard.get(side)
        if not isinstance(result, dict):
            continue
        scanners = result.get("scanners")
        if not isinstance(scanners, dict):
            continue
        for name, verdict in scanners.items():
            if not isinstance(verdict, dict) or not verdict.get("flagged"):
                continue
            findings = verdict.get("findings")
            count = sum(int(v) for v in findings.values() if isinstance(v, int)) if isinstance(findings, dict) else 0
            yield side, str(name)[:64], count, verdict.get("action") == "block"
