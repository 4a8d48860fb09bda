"""The OpenTelemetry export: a GenAI client span per request and the two ``gen_ai.client.*``
histograms, sent over OTLP/HTTP.

This is the only module (with ``otel_agents``) that imports OpenTelemetry, and the composition
root imports it only when ``otel.enabled`` is true: with the export off, no OpenTelemetry module is
loaded. The request path only puts the finished request's record on a queue
(``record_interaction``); a thread of this exporter turns records into spans and measurements
(redacting content there, when content is exported), and the SDK's batch processor and periodic
reader send them in the background.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson
import structlog
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion.config.otel_settings import OtelSettings
from bastion.config.secret_refs import resolve_secret
from bastion.observability.genai import (
    DURATION_BUCKETS,
    OPERATION_DURATION,
    TOKEN_BUCKETS,
    TOKEN_USAGE,
    ContentRedaction,
    Upstream,
    describe,
    redacted_content,
)
from bastion.observability.otel_agents import export_agent_trace

log = structlog.get_logger("bastion.otel")

#: The instrumentation scope of everything this exporter emits.
SCOPE: Final = "bastion"
_STOP: Final = object()
_PROPAGATOR: Final = TraceContextTextMapPropagator()

RedactorFactory = Callable[[], ContentRedaction]


def histogram_views() -> list[View]:
    """The conventions' explicit bucket boundaries for the two histograms."""
    return [
        View(instrument_name=TOKEN_USAGE, aggregation=ExplicitBucketHistogramAggregation(list(TOKEN_BUCKETS))),
        View(
            instrument_name=OPERATION_DURATION,
            aggregation=ExplicitBucketHistogramAggregation(list(DURATION_BUCKETS)),
        ),
    ]


def _resource(service_name: str) -> Resource:
    try:
        from importlib.metadata import version

        service_version = version("bastion")
    except Exception:  # running from a source tree that is not installed
        service_version = "unknown"
    return Resource.create({"service.name": service_name, "service.version": service_version})


class OtelExporter:
    """Turns interaction records into spans and measurements, off the request path."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        upstreams: Mapping[str, Upstream],
        redactor_factory: RedactorFactory | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer: Tracer = tracer_provider.get_tracer(SCOPE)
        meter = meter_provider.get_meter(SCOPE)
        self._tokens: Histogram = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used."
        )
        self._duration: Histogram = meter.create_histogram(
            OPERATION_DURATION, unit="s", description="GenAI operation duration."
        )
        self.upstreams = dict(upstreams)
        #: Content is exported only with a redactor (``otel.content``); built when the exporter starts.
        self._redactor_factory = redactor_factory
        self._redactor: ContentRedaction | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        #: Records dropped because the queue was full (the exporter could not keep up).
        self.dropped = 0

    @classmethod
    def from_settings(
        cls, settings: OtelSettings, upstreams: Mapping[str, Upstream], redactor_factory: RedactorFactory | None
    ) -> OtelExporter:
        """OTLP/HTTP exporters to ``settings.endpoint``; content only with ``settings.content``."""
        headers = {
            name: resolve_secret(value, f"otel.headers.{name}") or "" for name, value in settings.headers.items()
        }
        resource = _resource(settings.service_name)
        tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{settings.endpoint}/v1/traces", headers=headers))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{settings.endpoint}/v1/metrics", headers=headers),
            export_interval_millis=settings.metrics_interval_s * 1000.0,
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=histogram_views())
        return cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            upstreams=upstreams,
            redactor_factory=redactor_factory if settings.content else None,
            queue_size=settings.queue_size,
        )

    @classmethod
    def for_tests(
        cls,
        span_processor: SpanProcessor,
        metric_reader: MetricReader,
        upstreams: Mapping[str, Upstream],
        redactor_factory: RedactorFactory | None = None,
    ) -> OtelExporter:
        """An exporter over given processors (an in-memory exporter and reader), everything sampled."""
        tracer_provider = TracerProvider(resource=_resource("bastion"))
        tracer_provider.add_span_processor(span_processor)
        meter_provider = MeterProvider(
            resource=_resource("bastion"), metric_readers=[metric_reader], views=histogram_views()
        )
        return cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            upstreams=upstreams,
            redactor_factory=redactor_factory,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._redactor_factory is not None and self._redactor is None:
            # The guard's detectors take a second to build: not on the event loop.
            self._redactor = await asyncio.get_running_loop().run_in_executor(None, self._redactor_factory)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bastion-otel", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        loop = asyncio.get_running_loop()
        if thread is not None:
            self._queue.put(_STOP)
            await loop.run_in_executor(None, thread.join)
        # Sends what is batched (bounded by the exporters' timeouts), then closes them.
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    # -- the request path ----------------------------------------------------------------------

    def record_interaction(self, record: dict[str, Any]) -> None:
        """Queue a finished request's record; never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("otel_queue_full", dropped=self.dropped)

    def record_agent_run(
        self,
        events: Sequence[Any],
        *,
        run_id: str,
        plan: str,
        started_at: float,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an agent run's decision trace for export as spans (``otel_agents``)."""
        job = functools.partial(
            export_agent_trace,
            self.tracer,
            list(events),
            run_id=run_id,
            plan=plan,
            started_at=started_at,
            attributes=dict(attributes or {}),
        )
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Export every queued record to the processors, then flush them (tests, shutdown). Without
        the exporter's thread (never started, or stopped) the caller exports what is queued itself:
        waiting for the queue to empty would wait for ever."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.join()
        else:
            self._drain()
        self.tracer_provider.force_flush()

    def _drain(self) -> None:
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                if record is not _STOP:
                    self._handle(record)
            finally:
                self._queue.task_done()

    # -- the exporter's thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            try:
                if record is _STOP:
                    return
                self._handle(record)
            finally:
                self._queue.task_done()

    def _handle(self, record: Any) -> None:
        try:
            if callable(record):
                record()
            else:
                self.export(record)
        except Exception:  # one bad record must not stop the export
            log.exception("otel_export_failed", request_id=record.get("id") if isinstance(record, dict) else None)

    def _parent(self, record: Mapping[str, Any]) -> Context | None:
        """The caller's trace (its ``traceparent`` header), or None: the span starts a trace."""
        traceparent = record.get("traceparent")
        if not isinstance(traceparent, str) or not traceparent:
            return None
        carrier = {"traceparent": traceparent}
        tracestate = record.get("tracestate")
        if isinstance(tracestate, str) and tracestate:
            carrier["tracestate"] = tracestate
        return _PROPAGATOR.extract(carrier)

    def export(self, record: Mapping[str, Any]) -> None:
        """One record as a span and its measurements (runs on the exporter's thread)."""
        operation = describe(record, self.upstreams)
        span = self.tracer.start_span(
            operation.name,
            context=self._parent(record),
            kind=SpanKind.CLIENT,
            attributes=operation.attributes,
            start_time=operation.start_ns,
        )
        if span.is_recording() and self._redactor is not None:
            inputs, outputs = redacted_content(record, self._redactor)
            if inputs:
                span.set_attribute("gen_ai.input.messages", orjson.dumps(inputs).decode())
            if outputs:
                span.set_attribute("gen_ai.output.messages", orjson.dumps(outputs).decode())
        if operation.error_type is not None:
            # The type only: an error's message may quote the request.
            span.set_status(Status(StatusCode.ERROR, operation.error_type))
        span.end(end_time=operation.end_ns)

        attributes = operation.metric_attributes
        self._duration.record(operation.duration_s, attributes)
        if operation.input_tokens is not None:
            self._tokens.record(operation.input_tokens, {**attributes, "gen_ai.token.type": "input"})
        if operation.output_tokens is not None:
            self._tokens.record(operation.output_tokens, {**attributes, "gen_ai.token.type": "output"})
