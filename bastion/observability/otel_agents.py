"""An agent run's decision trace as OpenTelemetry spans: one ``invoke_agent {plan}`` span for the
run, a child span per step attempt (and per skipped step), the other decisions (budget checks,
breaker states, retries, loops) as events of the run span.

The events are those of ``bastion/agents/trace.py`` (dataclasses with ``kind`` and ``at_s``, the
offset from the run's start) or their ``event_dict`` form; this module reads them by field name,
so it needs nothing from the agents package (which sits above observability). Imported only when
the OpenTelemetry export is on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from bastion.observability.genai import epoch_ns

#: The run statuses that are not failures (``RunStatus.SUCCEEDED``).
_SUCCEEDED: Final = frozenset({"succeeded"})
_STEP_FIELDS: Final = ("step_id", "arm", "attempt", "input_hash")


def _as_dict(event: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return dataclasses.asdict(event)
    if isinstance(event, Mapping):
        return dict(event)
    raise TypeError(f"not a trace event: {type(event).__name__}")


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Attribute values: scalars and lists of strings as they are, mappings flattened with dots."""
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flat(f"{prefix}.{key}", item, out)
    elif isinstance(value, list | tuple):
        out[prefix] = tuple(str(item) for item in value)
    elif isinstance(value, bool | int | float | str):
        out[prefix] = value
    else:
        out[prefix] = str(value)


def _attributes(event: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key not in ("kind", "at_s", *skip):
            _flat(f"bastion.agent.{key}", value, out)
    return out


def export_agent_trace(
    tracer: Tracer,
    events: Sequence[Any],
    *,
    run_id: str,
    plan: str,
    started_at: float,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """Emit a run's trace as spans and return the (ended) run span.

    ``started_at``: the run's start, wall-clock seconds (``time.time()``); each event's ``at_s`` is
    an offset from it. ``attributes``: more attributes of the run span (tenant id, ...)."""
    base_ns = epoch_ns(started_at)
    items = [_as_dict(event) for event in events]

    def at(item: Mapping[str, Any]) -> int:
        return base_ns + round(float(item.get("at_s") or 0.0) * 1e9)

    end_ns = max((at(item) for item in items), default=base_ns)
    run = tracer.start_span(
        f"invoke_agent {plan}",
        kind=SpanKind.INTERNAL,
        start_time=base_ns,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": plan,
            "bastion.agent.run.id": run_id,
            **(attributes or {}),
        },
    )
    parent = trace.set_span_in_context(run)
    open_steps: dict[tuple[Any, Any], Span] = {}
    for item in items:
        kind = item.get("kind")
        if kind == "step_started":
            open_steps[(item.get("step_id"), item.get("attempt"))] = tracer.start_span(
                f"step {item.get('step_id')}",
                context=parent,
                kind=SpanKind.INTERNAL,
                start_time=at(item),
                attributes=_attributes(item),
            )
        elif kind == "step_finished":
            span = open_steps.pop((item.get("step_id"), item.get("attempt")), None) or tracer.start_span(
                f"step {item.get('step_id')}", context=parent, kind=SpanKind.INTERNAL, start_time=at(item)
            )
            span.set_attributes(_attributes(item, skip=_STEP_FIELDS))
            if not item.get("ok"):
                span.set_attribute("error.type", str(item.get("error") or "step_failed")[:128])
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=at(item))
        elif kind == "step_skipped":
            span = tracer.start_span(
                f"step {item.get('step_id')}",
                context=parent,
                kind=SpanKind.INTERNAL,
                start_time=at(item),
                attributes={**_attributes(item), "bastion.agent.skipped": True},
            )
            span.end(end_time=at(item))
        elif kind == "run_ended":
            run.set_attributes(_attributes(item))
            status = str(item.get("status") or "")
            if status not in _SUCCEEDED:
                run.set_attribute("error.type", status or "failed")
                run.set_status(Status(StatusCode.ERROR, str(item.get("reason") or "")[:200] or None))
        else:
            run.add_event(f"bastion.agent.{kind}", attributes=_attributes(item), timestamp=at(item))
    for span in open_steps.values():  # an attempt the trace never finished (a cancelled run)
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", "unfinished")
        span.end(end_time=end_ns)
    run.end(end_time=end_ns)
    return run
