"""An OpenTelemetry exporter over the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bastion.agents.budget import Remaining, Usage
from bastion.agents.trace import (
    BudgetChecked,
    LoopTaken,
    RunEnded,
    StepFinished,
    StepRetried,
    StepSkipped,
    StepStarted,
    TraceEvent,
)
from bastion.observability.genai import Upstream
from bastion.observability.otel import OtelExporter, RedactorFactory


@dataclass
class Captured:
    exporter: OtelExporter
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        self.exporter.flush()
        return list(self.spans.get_finished_spans())

    def histogram(self, name: str) -> list[HistogramDataPoint]:
        self.exporter.flush()
        points: list[HistogramDataPoint] = []
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points += [p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)]
        return points

    def units(self) -> dict[str, str]:
        data = self.metrics.get_metrics_data()
        return {
            metric.name: metric.unit or ""
            for resource in (data.resource_metrics if data is not None else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


def in_memory(upstreams: dict[str, Upstream] | None = None, redactor: RedactorFactory | None = None) -> Captured:
    spans = InMemorySpanExporter()
    metrics = InMemoryMetricReader()
    exporter = OtelExporter.for_tests(SimpleSpanProcessor(spans), metrics, upstreams or {}, redactor)
    return Captured(exporter, spans, metrics)


# An agent run's trace: a retried step, a loop taken, a skipped step.
STARTED_AT = 1_765_000_000.0
START_NS = 1_765_000_000 * 10**9
REMAINING = Remaining(iterations=9, wall_s=100.0, tokens=900, cost_usd=0.9, tool_calls=5)


def run_trace() -> list[TraceEvent]:
    return [
        BudgetChecked(0.0, ("draft",), Usage(100), REMAINING, True),
        StepStarted(0.01, "draft", "model", 1, "in-hash-1"),
        StepFinished(0.5, "draft", "model", 1, False, Usage(40), REMAINING, error="timeout"),
        StepRetried(0.5, "draft", 2, "timeout"),
        StepStarted(0.6, "draft", "model", 2, "in-hash-1"),
        StepFinished(1.2, "draft", "model", 2, True, Usage(60, 0.01), REMAINING, output_hash="out-hash"),
        LoopTaken(1.2, "review", "draft"),
        StepSkipped(1.3, "publish", "condition false"),
        RunEnded(1.5, "succeeded", "done", Usage(100, 0.01), 3),
    ]
