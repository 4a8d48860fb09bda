"""The background writer against real databases (each test on SQLite and on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bastion.config.settings import Settings
from bastion.ledger.journal import SEGMENT_SUFFIX, Journal
from bastion.ledger.store import RowInserter
from bastion.ledger.writer import REJECTED_FILE
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.ledger.support import count_rows, eventually, make_record, stored_ids, writer


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


async def _has_rows(db: Database, n: int) -> bool:
    return await count_rows(db) == n


class FlakyInserter(RowInserter):
    """A database that is down while ``down`` is set (raises what a lost connection raises)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.down = False
        self.failures = 0

    async def insert_params(self, params: list[tuple[Any, ...]]) -> None:
        if self.down:
            self.failures += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))
        await super().insert_params(params)


async def test_records_reach_the_database_with_every_field(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path)
    await w.start()
    for i in range(50):
        w.submit(make_record(i))
    await w.flush()
    assert await count_rows(database) == 50
    async with database.session() as session:
        row = (await session.execute(select(Interaction).where(Interaction.id == make_record(7)["id"]))).scalar_one()
    expected = make_record(7)
    assert row.tenant_id == expected["tenant_id"] and row.key_id == expected["key_id"]
    assert (row.model, row.deployment, row.upstream_model) == ("gpt-test", "gpt-test-0", "gpt-test-upstream")
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (11, 7, 2)
    assert row.cost_usd == pytest.approx(0.00125) and row.latency_ms == pytest.approx(12.5)
    assert row.request_messages == [{"role": "user", "content": "question 7"}]
    assert row.response_text == "answer 7" and row.status == 200 and row.stream is False
    assert abs(row.created_at.timestamp() - expected["ts"]) < 5 and row.created_at.tzinfo is not None
    await w.stop()
    assert segments(tmp_path) == []  # everything committed: nothing left to replay


async def test_inserts_are_idempotent(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path)
    await w.start()
    for _ in range(3):
        for i in range(20):
            w.submit(make_record(i))
    await w.flush()
    assert sorted(await stored_ids(database)) == sorted(make_record(i)["id"] for i in range(20))
    await w.stop()


async def test_queue_overflow_is_read_back_from_the_journal(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, queue_size=5, batch_size=50)
    await w.start()
    for i in range(300):
        w.submit(make_record(i))  # no await: the writer cannot run, the queue overflows
    assert w.overflows == 295
    await w.flush()
    assert await count_rows(database) == 300
    await w.stop()


async def test_the_queue_is_bounded_in_bytes_too(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, queue_max_bytes=64 * 1024)
    await w.start()
    big = [{"role": "user", "content": "x" * 16_000}]
    for i in range(40):
        w.submit(make_record(i, request_messages=big))  # ~16 KB lines: only a few fit in 64 KB
    assert 0 < len(w._queue) <= 5 and w.overflows >= 35
    await w.flush()
    assert await count_rows(database) == 40
    assert w._queued_bytes == 0
    await w.stop()


async def test_a_database_outage_loses_nothing_and_raises_nothing(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, queue_size=20, batch_size=10)
    flaky = FlakyInserter(database)
    w._inserter = flaky
    flaky.down = True
    await w.start()
    for i in range(100):
        w.submit(make_record(i))  # the request path never notices
    await eventually(lambda: flaky.failures >= 3, what="three failed attempts")
    assert flaky.failures >= 3 and w.errors >= 3
    assert await count_rows(database) == 0
    flaky.down = False
    await w.flush()
    assert await count_rows(database) == 100
    await w.stop()


async def test_stop_drains_everything(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, flush_interval_s=5.0)
    await w.start()
    for i in range(120):
        w.submit(make_record(i))
    await w.stop()
    assert await count_rows(database) == 120
    assert segments(tmp_path) == []


async def test_stop_with_the_database_down_keeps_the_journal_for_the_next_start(
    database: Database, tmp_path: Path
) -> None:
    first = writer(database, tmp_path, stop_timeout_s=1.0)
    flaky = FlakyInserter(database)
    flaky.down = True
    first._inserter = flaky
    await first.start()
    for i in range(30):
        first.submit(make_record(i))
    await first.stop()
    assert await count_rows(database) == 0
    assert segments(tmp_path)  # kept, and unlocked
    second = writer(database, tmp_path)
    await second.start()
    await second.flush()
    assert await count_rows(database) == 30
    assert second.replayed == 30
    await second.stop()
    assert segments(tmp_path) == []


async def test_dead_process_segments_are_replayed_from_their_checkpoint(database: Database, tmp_path: Path) -> None:
    dead = Journal(tmp_path, max_segment_bytes=4096)
    dead.open()
    spans = [dead.append(orjson.dumps(make_record(i), option=orjson.OPT_APPEND_NEWLINE)) for i in range(40)]
    assert len(dead.segments) > 1
    # The dead process had committed its first 5 records (and checkpointed them) before it died.
    live = writer(database, tmp_path / "elsewhere")
    await live.start()
    for i in range(5):
        live.submit(make_record(i))
    await live.flush()
    await live.stop()
    spans[4][0].checkpoint(spans[4][2])
    for segment in dead.segments:
        segment.close()  # what the kernel does when a process dies
    w = writer(database, tmp_path)
    await w.start()
    await w.flush()
    assert sorted(await stored_ids(database)) == sorted(make_record(i)["id"] for i in range(40))
    assert w.replayed == 35
    assert [p for p in segments(tmp_path) if p.name.startswith(dead.owner)] == []
    await w.stop()


async def test_a_live_writer_segments_are_not_replayed_by_another(database: Database, tmp_path: Path) -> None:
    a = writer(database, tmp_path, flush_interval_s=30.0)
    flaky = FlakyInserter(database)
    flaky.down = True
    a._inserter = flaky
    await a.start()
    for i in range(10):
        a.submit(make_record(i))
    b = writer(database, tmp_path)
    await b.start()
    await b.flush()
    assert b.replayed == 0 and await count_rows(database) == 0
    await b.stop()
    flaky.down = False
    await a.stop()
    assert await count_rows(database) == 10


async def test_orphans_appearing_later_are_found_by_the_periodic_scan(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, orphan_scan_interval_s=0.05)
    await w.start()
    dead = Journal(tmp_path)
    dead.open()
    for i in range(5):
        dead.append(orjson.dumps(make_record(i), option=orjson.OPT_APPEND_NEWLINE))
    for segment in dead.segments:
        segment.close()
    await eventually(lambda: _has_rows(database, 5), what="orphan replayed by the periodic scan")
    assert await count_rows(database) == 5
    await w.stop()


async def test_segments_rotate_and_committed_ones_are_deleted(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, segment_max_bytes=4096, batch_size=7)
    await w.start()
    for i in range(200):
        w.submit(make_record(i))
    await w.flush()
    assert await count_rows(database) == 200
    assert len(segments(tmp_path)) == 1  # only the segment being appended to
    await w.stop()
    assert segments(tmp_path) == []


async def test_rows_the_database_refuses_are_kept_aside(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path)
    await w.start()
    w.submit(make_record(1))
    w.submit(make_record(2, endpoint=None))  # NOT NULL: refused by the database itself
    w.submit(make_record(3, latency_ms="not a number"))  # refused before the database
    w.submit(make_record(4))
    await w.flush()
    assert sorted(await stored_ids(database)) == [make_record(1)["id"], make_record(4)["id"]]
    rejected = [orjson.loads(line) for line in (tmp_path / REJECTED_FILE).read_bytes().splitlines()]
    assert sorted(r["id"] for r in rejected) == [make_record(2)["id"], make_record(3)["id"]]
    await w.stop()


async def test_nul_characters_are_stored_on_both_backends(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path)
    await w.start()
    w.submit(make_record(1, response_text="a\x00b", request_messages=[{"role": "user", "content": "c\x00d"}]))
    await w.flush()
    async with database.session() as session:
        row = (await session.execute(select(Interaction))).scalar_one()
    assert row.request_messages is not None
    assert row.response_text == "a\ufffdb" and row.request_messages[0]["content"] == "c\ufffdd"
    await w.stop()


async def test_a_real_unreachable_database_is_retried_not_fatal(pg_database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:1/nothing")
    unreachable = Database.from_settings(settings)
    real = Database.from_settings(Settings(database_url=pg_database_url))
    w = writer(unreachable, tmp_path)
    await w.start()
    for i in range(10):
        w.submit(make_record(i))
    await eventually(lambda: w.errors >= 2, what="failed attempts on the unreachable database")
    assert w.errors >= 2 and w._task is not None and not w._task.done()
    w._inserter = RowInserter(real)  # the database is back
    await w.flush()
    assert await count_rows(real) == 10
    await w.stop()
    await unreachable.dispose()
    await real.dispose()


async def test_content_modes_reach_the_database(database: Database, tmp_path: Path) -> None:
    secret = "mail bob@corp-mail.io using bst_" + "K" * 40
    w = writer(database, tmp_path)
    await w.start()
    for i, mode in enumerate(("full", "redacted", "metadata")):
        w.submit(make_record(i, content_mode=mode, request_messages=[{"role": "user", "content": secret}],
                             response_text=secret))  # fmt: skip
    await w.flush()
    async with database.session() as session:
        rows = {r.content_mode: r for r in (await session.execute(select(Interaction))).scalars()}
    full, redacted = rows["full"], rows["redacted"]
    assert full.request_messages is not None and full.request_messages[0]["content"] == secret
    assert full.response_text == secret
    assert redacted.request_messages is not None and redacted.response_text is not None
    assert "bob@corp-mail.io" not in redacted.request_messages[0]["content"]
    assert "bst_KKKK" not in redacted.response_text and redacted.response_text.startswith("mail ")
    assert rows["metadata"].request_messages is None and rows["metadata"].response_text is None
    assert rows["metadata"].prompt_tokens == 11
    await w.stop()


async def test_metrics_follow_the_writer(database: Database, tmp_path: Path) -> None:
    from bastion.observability.metrics import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    written = sample("bastion_ledger_records_written_total")
    overflows = sample("bastion_ledger_queue_overflows_total")
    database_errors = sample("bastion_ledger_write_errors_total", kind="database")
    w = writer(database, tmp_path, queue_size=10)
    flaky = FlakyInserter(database)
    w._inserter = flaky
    flaky.down = True
    await w.start()
    for i in range(25):
        w.submit(make_record(i))
    assert sample("bastion_ledger_queue_depth") == 10
    assert sample("bastion_ledger_queue_overflows_total") == overflows + 15
    await eventually(lambda: flaky.failures >= 2)
    assert sample("bastion_ledger_journal_lag_bytes") > 0
    assert sample("bastion_ledger_write_errors_total", kind="database") >= database_errors + 2
    flaky.down = False
    await w.flush()
    assert sample("bastion_ledger_records_written_total") == written + 25
    assert sample("bastion_ledger_journal_lag_bytes") == 0
    await w.stop()
