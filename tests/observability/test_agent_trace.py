"""An agent run's decision trace as spans: the run span, a child per step attempt and skipped step,
the other decisions as events of the run span, failures as error statuses."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from bastion.agents.budget import Usage
from bastion.agents.trace import RunEnded, StepStarted, event_dict
from bastion.observability.otel_agents import export_agent_trace
from tests.observability.support import START_NS, STARTED_AT, in_memory, run_trace


def spans_by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def test_a_run_is_a_span_with_a_child_per_step_attempt() -> None:
    captured = in_memory()
    export_agent_trace(captured.exporter.tracer, run_trace(), run_id="run_1", plan="writer", started_at=STARTED_AT)
    spans = spans_by_name(captured.finished())
    assert set(spans) == {"invoke_agent writer", "step draft", "step publish"}
    (run,) = spans["invoke_agent writer"]
    assert run.parent is None and run.context is not None
    assert run.start_time == START_NS
    assert run.end_time == START_NS + 1_500_000_000
    attributes = dict(run.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "writer"
    assert attributes["bastion.agent.run.id"] == "run_1"
    assert attributes["bastion.agent.status"] == "succeeded"
    assert attributes["bastion.agent.spent.tokens"] == 100
    assert run.status.status_code is StatusCode.UNSET

    first, second = sorted(spans["step draft"], key=lambda s: s.start_time or 0)
    for step in (first, second):
        assert step.parent is not None and step.parent.span_id == run.context.span_id
        assert step.context is not None and step.context.trace_id == run.context.trace_id
    assert dict(first.attributes or {})["bastion.agent.attempt"] == 1
    assert first.status.status_code is StatusCode.ERROR
    assert dict(first.attributes or {})["error.type"] == "timeout"
    assert (first.end_time or 0) - (first.start_time or 0) == 490_000_000
    assert second.status.status_code is StatusCode.UNSET
    assert dict(second.attributes or {})["bastion.agent.output_hash"] == "out-hash"
    assert dict(second.attributes or {})["bastion.agent.usage.tokens"] == 60
    (skipped,) = spans["step publish"]
    assert dict(skipped.attributes or {})["bastion.agent.skipped"] is True
    assert skipped.start_time == skipped.end_time

    events = [(event.name, dict(event.attributes or {})) for event in run.events]
    assert [name for name, _ in events] == [
        "bastion.agent.budget_check",
        "bastion.agent.step_retried",
        "bastion.agent.loop",
    ]
    assert events[0][1]["bastion.agent.step_ids"] == ("draft",)
    assert events[2][1]["bastion.agent.to_step"] == "draft"


def test_a_failed_run_and_an_unfinished_attempt_are_errors() -> None:
    captured = in_memory()
    events = [
        event_dict(StepStarted(0.0, "fetch", "tool", 1, "h")),  # the dict form works as well
        event_dict(RunEnded(2.0, "cancelled", "cancelled by the caller", Usage(), 1)),
    ]
    export_agent_trace(captured.exporter.tracer, events, run_id="run_2", plan="p", started_at=STARTED_AT)
    spans = spans_by_name(captured.finished())
    (run,) = spans["invoke_agent p"]
    (fetch,) = spans["step fetch"]
    assert run.status.status_code is StatusCode.ERROR
    assert dict(run.attributes or {})["error.type"] == "cancelled"
    assert fetch.status.status_code is StatusCode.ERROR
    assert dict(fetch.attributes or {})["error.type"] == "unfinished"
    assert fetch.end_time == run.end_time


async def test_the_exporter_queues_a_run_for_its_thread() -> None:
    captured = in_memory()
    captured.exporter.record_agent_run(run_trace(), run_id="run_3", plan="writer", started_at=STARTED_AT)
    assert captured.spans.get_finished_spans() == ()  # nothing happens on the caller's thread ...
    await captured.exporter.start()
    await asyncio.to_thread(captured.exporter.flush)
    assert len(captured.spans.get_finished_spans()) == 4  # ... the exporter's thread exports it
    await captured.exporter.stop()
