"""Ledger stage: records every interaction durably (journal first, database in the background).

It sits early in the stage list so that its ``on_complete`` runs last, after usage, cost and limits
have filled the context. ``on_complete`` runs before the endpoint sends a complete answer and
before the last bytes of a stream, so by the time a client has its answer the record is in the
journal (see docs/LEDGER.md).

``build_record`` is the adapter from the request context to the ledger's journal record: it runs
on the request path, so it only reads fields into a flat, JSON-safe dict (no I/O, no redaction,
no datetime objects); the writer does the rest in the background (``bastion/ledger/record.py``).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.ledger.record import METADATA, RECORD_VERSION, content_mode
from bastion.ledger.writer import LedgerWriter

log = structlog.get_logger("bastion.ledger")


def build_record(ctx: RequestContext, mode: str) -> dict[str, Any]:
    """The journal record of a finished request. Cheap: reads fields, builds one dict."""
    now_perf = time.perf_counter()
    finished = ctx.finished_at if ctx.finished_at is not None else now_perf
    started = ctx.timing.started
    principal = ctx.principal
    usage = ctx.usage
    trace = ctx.trace
    error = ctx.error
    guard = ctx.guard.to_ledger() if ctx.guard is not None else None
    prompt = ctx.prompt
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "id": ctx.request_id,
        # Wall-clock arrival time, from the monotonic clock the request was timed with.
        "ts": time.time() - (now_perf - started),
        "tenant_id": principal.tenant_id if principal is not None else None,
        "user_id": principal.user_id if principal is not None else None,
        "key_id": principal.key_id if principal is not None else None,
        "endpoint": ctx.endpoint,
        "dialect": ctx.dialect,
        "model": trace.alias or ctx.model,
        "deployment": trace.deployment,
        "upstream_model": trace.upstream_model,
        "stream": ctx.stream,
        "status": ctx.status,
        "error_code": error.code if error is not None else None,
        "error_message": error.message if error is not None else None,
        "prompt_tokens": usage.prompt_tokens if usage is not None else 0,
        "completion_tokens": usage.completion_tokens if usage is not None else 0,
        "cached_tokens": usage.cached_tokens if usage is not None else 0,
        "cache_creation_input_tokens": usage.cache_creation_tokens if usage is not None else 0,
        "cache_creation_1h_input_tokens": usage.cache_creation_1h_tokens if usage is not None else 0,
        "tokens_estimated": usage.estimated if usage is not None else False,
        "cost_usd": ctx.cost_usd,
        "latency_ms": (finished - started) * 1000.0,
        "ttft_ms": (ctx.first_chunk_at - started) * 1000.0 if ctx.first_chunk_at is not None else None,
        "overhead_ms": max(0.0, (finished - started - trace.upstream_s) * 1000.0),
        "retries": trace.retries,
        "finish_reason": ctx.finish_reason,
        "user_agent": ctx.user_agent,
        "content_mode": mode,
        "request_messages": None,
        "response_text": None,
        "prompt_id": prompt.id if prompt is not None else None,
        "prompt_version": prompt.version if prompt is not None else None,
        "session_id": ctx.session_id,
        "flagged": ctx.flag_reason is not None or bool(guard and guard["flagged"]),
        "guard": guard,
        "extra": ctx.ledger_extra,
    }
    arm = ctx.experiment
    if arm is not None:
        record["experiment_id"] = arm.experiment_id
        record["experiment_variant"] = arm.variant.name
        record["experiment_unit"] = arm.unit_key
    if ctx.flag_reason is not None:
        record["extra"] = {**(ctx.ledger_extra or {}), "flag_reason": ctx.flag_reason}
    if mode != METADATA:
        messages = ctx.ledger_messages
        if messages is None:
            messages = ctx.body.get("messages") if ctx.endpoint == "chat" else ctx.body.get("input")
        record["request_messages"] = messages
        tools = ctx.body.get("tools") if ctx.endpoint == "chat" else None
        if isinstance(tools, list) and tools:
            # The tool definitions the answer was made with: a fine-tune example needs them.
            record["extra"] = {**(record["extra"] or {}), "tools": tools}
        if ctx.output_text:
            record["response_text"] = "".join(ctx.output_text)
    return record


class LedgerStage(Stage):
    name = "ledger"

    def __init__(self, writer: LedgerWriter, default_mode: str) -> None:
        self.writer = writer
        self.default_mode = default_mode

    async def on_complete(self, ctx: RequestContext) -> None:
        try:
            record = build_record(ctx, content_mode(ctx.principal, self.default_mode))
        except Exception:  # a malformed context must not cost the client its answer
            log.exception("ledger_record_failed", request_id=ctx.request_id)
            return
        self.writer.submit(record)
