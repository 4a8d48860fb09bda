"""OpenTelemetry stage: hands every finished request to the OpenTelemetry exporter (docs/INSIGHTS.md).

Present only when ``otel.enabled`` is true. Listed right after the ledger, so its ``on_complete``
runs just before the ledger's, when usage, cost, limits and the guard have filled the context. It
builds the same record the ledger journals (``build_record``), adds the request and response
fields the GenAI conventions want and the ledger does not keep, and queues it: the exporter's
thread makes the span, redacts content and records the histograms, off the request path.
"""

from __future__ import annotations

from typing import Any

import structlog

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.gateway.stages.ledger import build_record
from bastion.ledger.record import METADATA, REDACTED, content_mode
from bastion.observability.genai import InteractionExporter, operation_name

log = structlog.get_logger("bastion.otel")


def request_fields(ctx: RequestContext, response_id: str | None, response_model: str | None) -> dict[str, Any]:
    """The conventions' request and response fields the ledger's record does not carry."""
    body = ctx.body
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    return {
        "operation": operation_name(ctx.endpoint, ctx.text_completion),
        "max_tokens": max_tokens,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "response_id": response_id,
        "response_model": response_model,
        "cache": ctx.cache.outcome if ctx.cache is not None else None,
        # W3C trace context of the caller: the span joins the caller's trace.
        "traceparent": ctx.headers.get("traceparent"),
        "tracestate": ctx.headers.get("tracestate"),
    }


class OtelStage(Stage):
    name = "otel"

    def __init__(self, exporter: InteractionExporter, *, content: bool, ledger_mode: str) -> None:
        self.exporter = exporter
        #: ``otel.content``: records carry the request's messages and the answer (redacted by the
        #: exporter) unless the tenant's ledger mode is ``metadata``.
        self.content = content
        self.ledger_mode = ledger_mode
        #: Request id -> (response id, response model) of streams, read from their first chunk.
        self._streams: dict[str, tuple[str | None, str | None]] = {}

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        return self._watch(ctx, chunks)

    async def _watch(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        seen = False
        try:
            async for chunk in chunks:
                if not seen:
                    seen = True
                    self._streams[ctx.request_id] = (chunk.get("id"), chunk.get("model"))
                yield chunk
        finally:
            await chunks.aclose()

    async def on_complete(self, ctx: RequestContext) -> None:
        streamed = self._streams.pop(ctx.request_id, None)
        try:
            if streamed is not None:
                response_id, response_model = streamed
            elif ctx.response is not None:
                response_id, response_model = ctx.response.body.get("id"), ctx.response.body.get("model")
            else:
                response_id = response_model = None
            mode = METADATA
            if self.content and content_mode(ctx.principal, self.ledger_mode) != METADATA:
                mode = REDACTED  # the exporter always redacts what it exports, whatever the ledger keeps
            record = build_record(ctx, mode)
            record.update(request_fields(ctx, response_id, response_model))
        except Exception:  # a malformed context must not cost the client its answer
            log.exception("otel_record_failed", request_id=ctx.request_id)
            return
        self.exporter.record_interaction(record)
