"""The decision trace of a run: a list of typed events in the order the orchestrator decided them.

Times are offsets on the orchestrator's clock from the run's start, so a run with a fake clock (or
the same inputs and timings) gives the same trace and the same :func:`trace_hash`. Events of a
parallel group are recorded in the plan's step order, not in completion order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bastion.agents.budget import Remaining, Usage


@dataclass(frozen=True, slots=True)
class BudgetChecked:
    at_s: float
    step_ids: tuple[str, ...]
    reserve: Usage
    remaining: Remaining
    ok: bool
    reason: str | None = None
    kind: str = "budget_check"


@dataclass(frozen=True, slots=True)
class BreakerChecked:
    at_s: float
    step_id: str
    arm: str
    state: str
    kind: str = "breaker"


@dataclass(frozen=True, slots=True)
class StepStarted:
    at_s: float
    step_id: str
    arm: str
    attempt: int
    input_hash: str
    token_jti: str | None = None  # the capability token of this attempt (derived: replays match)
    remaining: Remaining | None = None  # the run's budget before the attempt (its reservation taken)
    kind: str = "step_started"


@dataclass(frozen=True, slots=True)
class StepFinished:
    at_s: float
    step_id: str
    arm: str
    attempt: int
    ok: bool
    usage: Usage
    remaining: Remaining  # after the attempt was settled
    output_hash: str | None = None
    error: str | None = None
    kind: str = "step_finished"


@dataclass(frozen=True, slots=True)
class StepRetried:
    at_s: float
    step_id: str
    next_attempt: int
    reason: str
    kind: str = "step_retried"


@dataclass(frozen=True, slots=True)
class StepSkipped:
    at_s: float
    step_id: str
    reason: str
    kind: str = "step_skipped"


@dataclass(frozen=True, slots=True)
class LoopTaken:
    at_s: float
    step_id: str
    to_step: str
    kind: str = "loop"


@dataclass(frozen=True, slots=True)
class RunEnded:
    at_s: float
    status: str
    reason: str
    spent: Usage
    iterations: int
    kind: str = "run_ended"


TraceEvent = (
    BudgetChecked | BreakerChecked | StepStarted | StepFinished | StepRetried | StepSkipped | LoopTaken | RunEnded
)


def event_dict(event: TraceEvent) -> dict[str, Any]:
    return dataclasses.asdict(event)


def content_hash(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys); the trace records hashes, not data."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def trace_hash(events: list[TraceEvent]) -> str:
    """The last link of the trace's hash chain (it covers every event)."""
    links = chain(events)
    return links[-1] if links else content_hash([])


def chain(events: list[TraceEvent]) -> list[str]:
    """Each event's link in a hash chain (``sha256(previous link + canonical event)``), so an
    edited, removed or reordered event changes every later link."""
    return record_chain([event_dict(event) for event in events])


def record_chain(records: list[dict[str, Any]]) -> list[str]:
    """:func:`chain` over events as stored (their dicts): the same links."""
    links: list[str] = []
    previous = ""
    for record in records:
        previous = hashlib.sha256((previous + content_hash(record)).encode()).hexdigest()
        links.append(previous)
    return links


def first_broken_link(events: list[TraceEvent], links: list[str]) -> int | None:
    """The index of the first event that does not match the stored chain, or None if it verifies."""
    return first_broken_record([event_dict(event) for event in events], links)


def first_broken_record(records: list[dict[str, Any]], links: list[str]) -> int | None:
    """:func:`first_broken_link` over events as stored."""
    recomputed = record_chain(records)
    for i, (got, stored) in enumerate(zip(recomputed, links, strict=False)):
        if got != stored:
            return i
    return None if len(recomputed) == len(links) else min(len(recomputed), len(links))
