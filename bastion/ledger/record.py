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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import JSON, Boolean, Float, Integer, String, Text

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


def _clean_json_bytes(raw: bytes) -> bytes:
    # PostgreSQL refuses NUL in text and JSONB; SQLite would keep it. Same data on both backends.
    return raw.replace(b"\\u0000", b"\\ufffd") if b"\\u0000" in raw else raw


def text_converter(length: int | None) -> Callable[[Any], str | None]:
    """Strings as the database takes them: NUL replaced, clipped to the column's length."""

    def convert(value: Any) -> str | None:
        if value is None:
            return None
        if type(value) is not str:
            value = str(value)
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        return value if length is None or len(value) <= length else value[:length]

    return convert


def _int(value: Any) -> int:
    return int(value or 0)


def _optional_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float:
    return float(value or 0.0)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def json_value(value: Any) -> Any:
    if value is None:
        return None
    raw = orjson.dumps(value, default=json_default)
    cleaned = _clean_json_bytes(raw)
    return value if cleaned is raw else orjson.loads(cleaned)


def json_text(value: Any) -> str | None:
    """A JSON column's value as the text both drivers accept (SQLite TEXT, PostgreSQL JSONB)."""
    if value is None:
        return None
    return _clean_json_bytes(orjson.dumps(value, default=json_default)).decode()


def created_at(ts: Any) -> datetime:
    return datetime.fromtimestamp(float(ts) if ts is not None else time.time(), UTC)


def _content_mode(value: Any) -> str:
    return str(value)[:16] if value else FULL


def _converter(column: Any) -> Callable[[Any], Any]:
    kind = column.type
    if column.name == "content_mode":
        return _content_mode
    if isinstance(kind, JSON):
        return json_value
    if isinstance(kind, Boolean):
        return bool
    if isinstance(kind, Integer):
        return _optional_int if column.nullable else _int
    if isinstance(kind, Float):
        return _optional_float if column.nullable else _float
    if isinstance(kind, String | Text):
        return text_converter(getattr(kind, "length", None))
    # A column this module does not know yet (added by a later migration): records carry no value
    # for it, so it is inserted as NULL, or as given if a stage put it in the record.
    return _as_is


def _as_is(value: Any) -> Any:
    return value


#: (column, converter from the journal record's value to the row's Python value); ``created_at``
#: comes from the record's ``ts`` and is handled apart.
CONVERTERS: Final[tuple[tuple[str, Callable[[Any], Any]], ...]] = tuple(
    (c.name, _converter(c)) for c in _table.columns if c.name != "created_at"
)


def apply_content_mode(record: dict[str, Any], redact: Any = None) -> dict[str, Any]:
    """The record with its content as its mode says: dropped (metadata), redacted, or as is."""
    mode = record.get("content_mode") or FULL
    if mode == FULL:
        return record
    record = dict(record)
    if mode == REDACTED and redact is not None:
        record["request_messages"] = redact.messages(record.get("request_messages"))
        if record.get("response_text") is not None:
            record["response_text"] = redact.text(record["response_text"])
    elif mode != REDACTED:
        record["request_messages"] = record["response_text"] = None
    return record


def to_row(record: dict[str, Any], redact: Any = None) -> dict[str, Any]:
    """The ``interactions`` row (Python values, as the ORM would hold them) for a journal record.

    ``redact`` is a ``ContentRedactor`` used when the record's mode is ``redacted``. The writer
    itself goes straight to driver parameters (``store.RowInserter``), with the same conversions.
    """
    record = apply_content_mode(record, redact)
    get = record.get
    row = {name: convert(get(name)) for name, convert in CONVERTERS}
    row["created_at"] = created_at(get("ts"))
    return row
