"""What the ledger keeps about one interaction: the journal record's format and its conversion to
an ``interactions`` row.

The record itself is built on the request path by the ledger stage
(``bastion/gateway/stages/ledger.py: build_record``): a flat, JSON-safe dict. Everything that costs
more (timestamps as datetimes, redaction, column-length clipping) happens here, in ``to_row``, in
the background writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
from sqlalchemy import JSON, Boolean, Float, Integer, String, Text

from bastion.store.models import Interaction

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
        text = value if type(value) is str else str(value)
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        return text if length is None or len(text) <= length else text[:length]

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


#: Columns the writer never sends: ``written_at`` is the database's own default.
_NOT_WRITTEN: Final = frozenset({"created_at", "written_at"})
#: (column, converter from the journal record's value to the row's Python value); ``created_at``
#: comes from the record's ``ts`` and is handled apart.
CONVERTERS: Final[tuple[tuple[str, Callable[[Any], Any]], ...]] = tuple(
    (c.name, _converter(c)) for c in _table.columns if c.name not in _NOT_WRITTEN
)


#: Record fields a client can put anything in, outside the content: redacted in every mode.
CLIENT_FIELDS: Final = ("user_agent", "model", "error_message")
#: Roles whose messages are the caller's instructions (``ledger.system_messages`` decides).
INSTRUCTION_ROLES: Final = frozenset({"system", "developer"})


class Redactor(Protocol):
    """``text``/``messages``: structured PII and secrets; ``content``/``content_messages``: what
    ``redacted`` mode keeps (named entities too, when the ledger redacts names)."""

    def text(self, value: str) -> str: ...

    def messages(self, value: Any) -> Any: ...

    def content(self, value: str) -> str: ...

    def content_messages(self, value: Any) -> Any: ...


def apply_content_mode(
    record: dict[str, Any], redact: Redactor | None = None, system_messages: str = "redact"
) -> dict[str, Any]:
    """The record as the ledger keeps it.

    Content per its mode: dropped (``metadata``), redacted (``redacted``), or as sent (``full``:
    what the guard let through, its redactions included), where the caller's system and developer
    messages are redacted, dropped or kept as ``system_messages`` says (the guard does not scan
    them). In every mode, the fields a client fills freely (user agent, an unrouted model name,
    an error message quoting the request) go through the redactor too."""
    mode = record.get("content_mode") or FULL
    record = dict(record)
    if redact is not None:
        for name in CLIENT_FIELDS:
            value = record.get(name)
            if isinstance(value, str) and value:
                record[name] = redact.text(value)
    if mode == REDACTED and redact is not None:
        record["request_messages"] = redact.content_messages(record.get("request_messages"))
        if record.get("response_text") is not None:
            record["response_text"] = redact.content(record["response_text"])
    elif mode == FULL:
        record["request_messages"] = _instructions(record.get("request_messages"), redact, system_messages)
    elif mode != REDACTED:
        record["request_messages"] = record["response_text"] = None
    return record


def _instructions(messages: Any, redact: Redactor | None, policy: str) -> Any:
    """Chat messages with the caller's instructions handled per ``policy`` (keep, redact, drop)."""
    if policy == "keep" or not isinstance(messages, list):
        return messages
    if not any(isinstance(m, dict) and m.get("role") in INSTRUCTION_ROLES for m in messages):
        return messages
    if policy == "drop":
        return [m for m in messages if not (isinstance(m, dict) and m.get("role") in INSTRUCTION_ROLES)]
    if redact is None:
        return messages
    return [redact.messages(m) if isinstance(m, dict) and m.get("role") in INSTRUCTION_ROLES else m for m in messages]


def to_row(record: dict[str, Any], redact: Redactor | None = None, system_messages: str = "redact") -> dict[str, Any]:
    """The ``interactions`` row (Python values, as the ORM would hold them) for a journal record.

    ``redact`` is a ``ContentRedactor`` (see ``apply_content_mode``). The writer itself goes
    straight to driver parameters (``store.RowInserter``), with the same conversions.
    """
    record = apply_content_mode(record, redact, system_messages)
    get = record.get
    row = {name: convert(get(name)) for name, convert in CONVERTERS}
    row["created_at"] = created_at(get("ts"))
    return row
