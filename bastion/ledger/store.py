"""The ledger's database side: idempotent batch inserts and the queries the admin API offers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Select, Table, and_, or_, select
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.exc import DBAPIError as _DBAPIError

from bastion.errors import InvalidRequest
from bastion.ledger.record import CONVERTERS, created_at, json_text
from bastion.store.db import Database
from bastion.store.models import Interaction

_TABLE: Table = Interaction.__table__  # type: ignore[assignment]  # declarative tables are Table objects


class RowInserter:
    """``INSERT ... ON CONFLICT (id) DO NOTHING`` of many journal records in one transaction.

    Replaying a record that is already stored is a no-op, which is what makes journal replay safe.
    Records go to the driver as prebuilt parameter tuples: SQLAlchemy's per-row type processing
    costs several times the database's own work for a row this wide. The conversions are those of
    ``record.to_row`` plus what SQLAlchemy's types do for each driver (times as UTC text on SQLite,
    JSON as text, booleans as integers on SQLite); ``tests/ledger/test_store.py`` checks that such
    rows read back exactly like ORM-written ones. A JSON ``None`` is stored as SQL NULL.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sqlite = db.is_sqlite
        names = [name for name, _ in CONVERTERS] + ["created_at"]
        self._head = f"INSERT INTO {_TABLE.name} ({', '.join(names)}) VALUES "
        self._row_marks = "(" + ", ".join("?" for _ in names) + ")"
        # The drivers' own placeholder styles: qmark (sqlite3), numbered (asyncpg).
        marks = ", ".join("?" if self.sqlite else f"${i}" for i in range(1, len(names) + 1))
        self.sql = f"{self._head}({marks}){_ON_CONFLICT}"
        plan: list[tuple[str, Callable[[Any], Any]]] = []
        for name, convert in CONVERTERS:
            if name in _JSON_COLUMNS:
                convert = json_text
            elif self.sqlite and name in _BOOL_COLUMNS:
                convert = _sqlite_bool
            plan.append((name, convert))
        plan.append(("ts", _sqlite_time if self.sqlite else created_at))
        self._plan = tuple(plan)
        self._multi_sql: dict[int, str] = {}

    def params(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The parameter tuple of a record (content mode already applied). Raises on bad values."""
        get = record.get
        return tuple([convert(get(name)) for name, convert in self._plan])

    async def insert(self, records: list[dict[str, Any]]) -> None:
        """Insert journal records; those already stored are skipped."""
        await self.insert_params([self.params(record) for record in records])

    async def insert_params(self, params: list[tuple[Any, ...]]) -> None:
        if not params:
            return
        async with self.db.engine.begin() as connection:
            if not self.sqlite:
                # asyncpg pipelines an executemany in one round trip, on this thread.
                await connection.exec_driver_sql(self.sql, params)
                return
            # SQLite runs in aiosqlite's thread. Its executemany releases and re-takes the GIL around
            # every row, and each re-take waits for the event loop to let go of it: on one core that
            # costs several times the insert itself. A multi-row INSERT re-takes it once per chunk.
            for start in range(0, len(params), _SQLITE_CHUNK):
                chunk = params[start : start + _SQLITE_CHUNK]
                await connection.exec_driver_sql(self._multi_row_sql(len(chunk)), tuple(chain.from_iterable(chunk)))

    def _multi_row_sql(self, rows: int) -> str:
        sql = self._multi_sql.get(rows)
        if sql is None:
            sql = self._multi_sql[rows] = self._head + ", ".join([self._row_marks] * rows) + _ON_CONFLICT
        return sql


_ON_CONFLICT = " ON CONFLICT (id) DO NOTHING"
#: Rows per SQLite statement: 64 x 35 parameters stays far below SQLite's 32766-variable limit.
_SQLITE_CHUNK = 64
_JSON_COLUMNS = frozenset(c.name for c in _TABLE.columns if isinstance(c.type, JSON))
_BOOL_COLUMNS = frozenset(c.name for c in _TABLE.columns if isinstance(c.type, Boolean))


def _sqlite_bool(value: Any) -> int:
    return 1 if value else 0


def _sqlite_time(ts: Any) -> str:
    # How SQLAlchemy stores DateTime on SQLite: naive UTC text with microseconds.
    return created_at(ts).replace(tzinfo=None).isoformat(" ", "microseconds")


def is_row_error(exc: BaseException) -> bool:
    """Whether a failed insert was the data's fault (retrying cannot help), not the database's."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    # A value that could not even be bound (a type error while preparing) is not an outage.
    return isinstance(exc, StatementError) and not isinstance(exc, _DBAPIError)


# -- queries ---------------------------------------------------------------------------------------

#: Columns of a listing (everything but the content, which can be large).
LIST_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in _TABLE.columns if c.name not in ("request_messages", "response_text")
)
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class InteractionFilter:
    """What ``GET /api/v1/admin/interactions`` can filter on; every query is scoped to one tenant."""

    tenant_id: str
    since: datetime | None = None
    until: datetime | None = None
    key_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    status: int | None = None
    flagged: bool | None = None
    experiment_id: str | None = None
    experiment_variant: str | None = None


def encode_cursor(created_at: datetime, interaction_id: str) -> str:
    payload = orjson.dumps([created_at.astimezone(UTC).isoformat(), interaction_id])
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for; a cursor that is not one of ours is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, interaction_id = orjson.loads(raw)
        created_at = datetime.fromisoformat(stamp)
        if not isinstance(interaction_id, str) or created_at.tzinfo is None:
            raise ValueError("bad cursor")
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest("Invalid cursor: pass back the next_cursor of a previous page.", param="cursor") from None
    return created_at, interaction_id


def _filtered(query: Select[Any], f: InteractionFilter) -> Select[Any]:
    table = _TABLE.c
    conditions = [table.tenant_id == f.tenant_id]
    if f.since is not None:
        conditions.append(table.created_at >= f.since)
    if f.until is not None:
        conditions.append(table.created_at < f.until)
    if f.key_id is not None:
        conditions.append(table.key_id == f.key_id)
    if f.user_id is not None:
        conditions.append(table.user_id == f.user_id)
    if f.model is not None:
        conditions.append(table.model == f.model)
    if f.status is not None:
        conditions.append(table.status == f.status)
    if f.flagged is not None:
        conditions.append(table.flagged == f.flagged)
    if f.experiment_id is not None:
        conditions.append(table.experiment_id == f.experiment_id)
    if f.experiment_variant is not None:
        conditions.append(table.experiment_variant == f.experiment_variant)
    return query.where(*conditions)


async def list_interactions(
    db: Database, f: InteractionFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first (``created_at`` desc, then ``id`` desc), and the next page's cursor."""
    table = _TABLE.c
    limit = max(1, min(limit, MAX_PAGE))
    query = _filtered(select(*(table[name] for name in LIST_COLUMNS)), f)
    if cursor is not None:
        created_at, interaction_id = decode_cursor(cursor)
        query = query.where(
            or_(table.created_at < created_at, and_(table.created_at == created_at, table.id < interaction_id))
        )
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    async with db.engine.connect() as connection:
        rows = [dict(row._mapping) for row in await connection.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
    return rows, next_cursor


async def get_interaction(db: Database, tenant_id: str, interaction_id: str) -> dict[str, Any] | None:
    """One interaction with its content, or None if it does not exist in this tenant."""
    query = select(_TABLE).where(_TABLE.c.id == interaction_id, _TABLE.c.tenant_id == tenant_id)
    async with db.engine.connect() as connection:
        row = (await connection.execute(query)).first()
    return dict(row._mapping) if row is not None else None


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a row: ISO times, everything else as stored."""
    out = {"object": "interaction", **row}
    created_at = out.get("created_at")
    if isinstance(created_at, datetime):
        out["created_at"] = created_at.astimezone(UTC).isoformat()
    return out
