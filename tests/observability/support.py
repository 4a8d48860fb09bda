"""An OpenTelemetry exporter over the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
