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
    kind: str = "step_started"


@dataclass(frozen=True, slots=True)
class StepFinished:
    at_s: float
    step_id: str
    arm: str
    attempt: int
    ok: bool
    usage: Usage
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
    return content_hash([event_dict(e) for e in events])
