"""What the ledger keeps about one interaction.

``build_record`` runs on the request path (in the ledger stage's ``on_complete``), so it only reads
the context into a flat, JSON-safe dict: no I/O, no redaction, no datetime objects. Everything that
costs more (timestamps as datetimes, redaction, column-length clipping) happens in ``to_row``, in the
background writer.

Stages that want something in the ledger put it in ``ctx.annotations``:

==================  ==============================================================================
``guard``           the guard's verdict (a dict, or an object with ``to_ledger()``); its ``flagged``
                    marks the interaction as flagged
``flagged``         any truthy value flags the interaction (a reason string is kept in ``extra``)
``prompt_id``       prompt-vault id and ``prompt_version`` (int)
``session_id``      agent session
``ledger_messages`` the messages to record instead of ``body["messages"]`` (a stage that rewrote the
                    messages with secret content, such as a vault system prompt, puts the client's
                    view here)
``ledger_extra``    a dict merged into the ``extra`` column (experiment arm, cache hit, ...)
==================  ==============================================================================
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import String

from bastion.store.models import Interaction

if TYPE_CHECKING:
    from bastion.gateway.context import RequestContext

#: Version of the journal line format, so a newer writer can still replay an older journal.
RECORD_VERSION: Final = 1

FULL: Final = "full"
REDACTED: Final = "redacted"
METADATA: Final = "metadata"
CONTENT_MODES: Final = (FULL, REDACTED, METADATA)
#: Spellings accepted in tenant settings for the redacted mode.
_MODE_ALIASES: Final = {"redacted-later": REDACTED, "redacted_later": REDACTED, "meta": METADATA}

_table = Interaction.__table__
#: Every column the writer fills, in table order (executemany needs one key set for all rows).
COLUMNS: Final[tuple[str, ...]] = tuple(c.name for c in _table.columns)
#: Maximum lengths of the bounded string columns: longer values are clipped, not rejected.
_LENGTHS: Final[dict[str, int]] = {
    c.name: c.type.length for c in _table.columns if isinstance(c.type, String) and c.type.length
}


def content_mode(principal: Any, default: str) -> str:
    """The tenant's ledger mode (``full``, ``redacted`` or ``metadata``), else ``default``."""
    mode = None
    if principal is not None:
        settings = getattr(principal, "tenant_settings", None)
        if settings:
            mode = settings.get("ledger_mode")
    if not mode:
        return default
    mode = _MODE_ALIASES.get(mode, mode)
    # An unknown value must not silently store more than intended: fall back to metadata only.
    return mode if mode in CONTENT_MODES else METADATA


def _guard_summary(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    to_ledger = getattr(value, "to_ledger", None)
    return to_ledger() if callable(to_ledger) else None


def build_record(ctx: RequestContext, mode: str) -> dict[str, Any]:
    """The journal record of a finished request. Cheap: reads fields, builds one dict."""
    now_perf = time.perf_counter()
    finished = ctx.finished_at if ctx.finished_at is not None else now_perf
    started = ctx.timing.started
    principal = ctx.principal
    usage = ctx.usage
    trace = ctx.trace
    error = ctx.error
    notes = ctx.annotations
    guard = _guard_summary(notes.get("guard")) if notes else None
    flagged = bool(notes.get("flagged")) or bool(guard and guard.get("flagged")) if notes else False
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
        "prompt_id": None,
        "prompt_version": None,
        "session_id": None,
        "flagged": flagged,
        "guard": guard,
        "extra": None,
    }
    if mode != METADATA:
        body = ctx.body
        messages = notes.get("ledger_messages") if notes else None
        if messages is None:
            messages = body.get("messages") if ctx.endpoint == "chat" else body.get("input")
        record["request_messages"] = messages
        if ctx.output_text:
            record["response_text"] = "".join(ctx.output_text)
    if notes:
        record["prompt_id"] = notes.get("prompt_id")
        record["prompt_version"] = notes.get("prompt_version")
        record["session_id"] = notes.get("session_id")
        extra = notes.get("ledger_extra")
        reason = notes.get("flagged")
        if isinstance(reason, str):
            extra = {**(extra or {}), "flag_reason": reason}
        record["extra"] = extra
    return record


def json_default(value: Any) -> Any:
    """orjson fallback for annotation values it cannot encode: never fail a record over them."""
    to_ledger = getattr(value, "to_ledger", None)
    if callable(to_ledger):
        return to_ledger()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def encode_record(record: dict[str, Any]) -> bytes:
    """One journal line (JSON plus ``\\n``)."""
    return orjson.dumps(record, default=json_default, option=orjson.OPT_APPEND_NEWLINE)


def _clean_text(value: str) -> str:
    # PostgreSQL refuses NUL in text and JSONB; SQLite would keep it. Same data on both backends.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _clean_json(value: Any) -> Any:
    raw = orjson.dumps(value, default=json_default)
    if b"\\u0000" not in raw:
        return value
    return orjson.loads(raw.replace(b"\\u0000", b"\\ufffd"))


def to_row(record: dict[str, Any], redact: Any = None) -> dict[str, Any]:
    """The ``interactions`` row for a journal record (background writer only).

    ``redact`` is a ``ContentRedactor`` used when the record's mode is ``redacted``.
    """
    row = {name: record.get(name) for name in COLUMNS}
    row["created_at"] = datetime.fromtimestamp(float(record.get("ts") or time.time()), UTC)
    for name in ("stream", "tokens_estimated", "flagged"):
        row[name] = bool(row[name])
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "retries"):
        row[name] = int(row[name] or 0)
    row["cost_usd"] = float(row["cost_usd"] or 0.0)
    row["latency_ms"] = float(row["latency_ms"] or 0.0)
    row["content_mode"] = row["content_mode"] or FULL
    if row["content_mode"] == METADATA:
        row["request_messages"] = row["response_text"] = None
    elif row["content_mode"] == REDACTED and redact is not None:
        row["request_messages"] = redact.messages(row["request_messages"])
        if row["response_text"] is not None:
            row["response_text"] = redact.text(row["response_text"])
    for name, length in _LENGTHS.items():
        value = row[name]
        if isinstance(value, str):
            value = _clean_text(value)
            row[name] = value[:length] if len(value) > length else value
        elif value is not None and name != "id":
            row[name] = str(value)[:length]
    for name in ("error_message", "response_text"):
        if isinstance(row[name], str):
            row[name] = _clean_text(row[name])
    for name in ("request_messages", "guard", "extra"):
        if row[name] is not None:
            row[name] = _clean_json(row[name])
    if row["prompt_version"] is not None:
        try:
            row["prompt_version"] = int(row["prompt_version"])
        except (TypeError, ValueError):
            row["prompt_version"] = None
    return row
