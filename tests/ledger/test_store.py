"""Ledger storage on SQLite and PostgreSQL: raw inserts read back like ORM rows; admin queries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bastion.errors import InvalidRequest
from bastion.ledger.record import to_row
from bastion.ledger.store import (
    InteractionFilter,
    RowInserter,
    decode_cursor,
    encode_cursor,
    get_interaction,
    list_interactions,
)
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.ledger.support import make_record

T1, T2 = "1" * 32, "2" * 32
BASE = time.time() - 3600


async def test_raw_inserts_read_back_like_orm_rows(database: Database) -> None:
    same: dict[str, Any] = {"guard": {"flagged": True}, "extra": None, "flagged": True, "stream": True, "ttft_ms": 3.5}
    same |= {"request_messages": [{"role": "user", "content": "x"}], "response_text": "y"}
    record = make_record(1, **same)
    await RowInserter(database).insert([record])
    orm_row = to_row(make_record(2, **same))
    orm_row["created_at"] = to_row(record)["created_at"]
    async with database.transaction() as session:
        session.add(Interaction(**orm_row))
    async with database.session() as session:
        rows = {r.id: r for r in (await session.execute(select(Interaction))).scalars()}
    raw, orm = rows[record["id"]], rows[make_record(2)["id"]]
    for column in Interaction.__table__.columns:
        if column.name in ("id", "written_at"):  # written_at: each insert's own database time
            continue
        assert getattr(raw, column.name) == getattr(orm, column.name), column.name
    assert raw.written_at is not None and orm.written_at is not None
    assert raw.created_at == datetime.fromtimestamp(record["ts"], UTC)
    assert raw.extra is None and raw.guard == {"flagged": True} and raw.stream is True


async def _seed(db: Database) -> list[dict[str, Any]]:
    """Two tenants; times one second apart (newest last), varied key, user, model, status, flag."""
    records = []
    for i in range(30):
        records.append(
            make_record(
                i,
                tenant_id=T1 if i % 3 else T2,
                key_id=f"{i % 2:032d}",
                user_id="u" * 32 if i % 5 == 0 else None,
                model="big" if i % 4 == 0 else "small",
                status=429 if i % 7 == 0 else 200,
                flagged=i % 6 == 0,
                ts=BASE + i,
            )
        )
    await RowInserter(db).insert(records)
    return records


def _expected(records: list[dict[str, Any]], **conditions: object) -> list[str]:
    chosen = [r for r in records if all(r[k] == v for k, v in conditions.items())]
    return [r["id"] for r in sorted(chosen, key=lambda r: r["ts"], reverse=True)]


async def _all_pages(db: Database, f: InteractionFilter, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        rows, cursor = await list_interactions(db, f, limit=limit, cursor=cursor)
        assert len(rows) <= limit
        ids += [r["id"] for r in rows]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


async def test_listing_is_newest_first_and_scoped_to_the_tenant(database: Database) -> None:
    records = await _seed(database)
    rows, cursor = await list_interactions(database, InteractionFilter(tenant_id=T1), limit=100)
    assert [r["id"] for r in rows] == _expected(records, tenant_id=T1) and cursor is None
    assert all(r["tenant_id"] == T1 for r in rows)
    assert "request_messages" not in rows[0] and "response_text" not in rows[0]


@pytest.mark.parametrize(
    "conditions",
    [
        {"key_id": f"{1:032d}"},
        {"user_id": "u" * 32},
        {"model": "big"},
        {"status": 429},
        {"flagged": True},
        {"flagged": False},
        {"model": "small", "status": 200, "key_id": f"{0:032d}"},
    ],
)
async def test_each_filter(database: Database, conditions: dict[str, Any]) -> None:
    records = await _seed(database)
    f = InteractionFilter(tenant_id=T1, **conditions)
    assert await _all_pages(database, f, limit=100) == _expected(records, tenant_id=T1, **conditions)


async def test_time_range_from_inclusive_to_exclusive(database: Database) -> None:
    records = await _seed(database)
    since = datetime.fromtimestamp(records[6]["ts"], UTC)
    until = datetime.fromtimestamp(records[20]["ts"], UTC)
    f = InteractionFilter(tenant_id=T1, since=since, until=until)
    expected = [r["id"] for r in reversed(records[6:20]) if r["tenant_id"] == T1]
    assert await _all_pages(database, f, limit=100) == expected
    far = InteractionFilter(tenant_id=T1, since=datetime.now(UTC) + timedelta(days=1))
    assert await _all_pages(database, far, limit=10) == []


@pytest.mark.parametrize("limit", [1, 3, 7, 20])
async def test_pagination_visits_every_row_once(database: Database, limit: int) -> None:
    records = await _seed(database)
    assert await _all_pages(database, InteractionFilter(tenant_id=T1), limit) == _expected(records, tenant_id=T1)


async def test_pagination_breaks_time_ties_by_id(database: Database) -> None:
    same = BASE + 5000
    records = [make_record(i, tenant_id=T1, ts=same) for i in range(9)]
    await RowInserter(database).insert(records)
    ids = await _all_pages(database, InteractionFilter(tenant_id=T1), limit=2)
    assert ids == sorted((r["id"] for r in records), reverse=True)


async def test_get_one_is_scoped_to_the_tenant(database: Database) -> None:
    records = await _seed(database)
    mine, theirs = records[1], records[0]
    assert (mine["tenant_id"], theirs["tenant_id"]) == (T1, T2)
    row = await get_interaction(database, T1, mine["id"])
    assert row is not None and row["request_messages"] == mine["request_messages"]
    assert row["response_text"] == mine["response_text"]
    assert await get_interaction(database, T1, theirs["id"]) is None
    assert await get_interaction(database, T1, "req_missing") is None


def test_cursor_round_trip_and_garbage() -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode_cursor(encode_cursor(stamp, "req_1")) == (stamp, "req_1")
    for garbage in ("", "!!!", "bm90IGpzb24", encode_cursor(stamp, "x")[:-3], "WzEsMl0"):
        with pytest.raises(InvalidRequest):
            decode_cursor(garbage)
