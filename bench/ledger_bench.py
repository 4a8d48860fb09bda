"""Ledger micro-benchmarks (not collected by pytest): the request-path cost and writer throughput.

    .venv/bin/python -m bench.ledger_bench [--records 50000]

1. ``LedgerStage.on_complete`` per call (build the record, encode it, one ``os.write`` to the
   journal, queue it), with fsync off (the default) and on.
2. Writer throughput: records/s from journal+queue into SQLite and into PostgreSQL (a scratch
   database on this machine's server), in steady state (queue fed) and in catch-up from the
   journal (queue overflowed), plus replay of a dead process's journal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import orjson

from bastion.config.settings import LedgerSettings, Settings
from bastion.gateway.stages.ledger import LedgerStage
from bastion.ledger.journal import Journal
from bastion.ledger.writer import LedgerWriter
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.ledger.support import count_rows, make_context, make_record, principal
from tests.support.db import PG_ADMIN_DSN, pg_url


async def bench_on_complete(db: Database, journal: Path, fsync: bool, n: int) -> list[float]:
    settings = LedgerSettings(journal_dir=journal, fsync=fsync, flush_interval_s=0.05)
    writer = LedgerWriter(settings, db, journal)
    stage = LedgerStage(writer, settings.default_mode)
    await writer.start()
    ctx = make_context(principal=principal())
    ctx.body["messages"] = [
        {"role": "system", "content": "You are a helpful assistant. " * 4},
        {"role": "user", "content": "Summarise the following paragraph in one sentence. " * 6},
    ]
    ctx.output_text[:] = ["The paragraph says that the gateway records every request durably. " * 2]
    samples = []
    gc.disable()
    try:
        for _ in range(5):
            started = time.perf_counter()
            for i in range(n):
                ctx.request_id = f"req_{uuid.uuid4().hex[:24]}_{i}"
                await stage.on_complete(ctx)
            samples.append((time.perf_counter() - started) / n * 1e6)
            await asyncio.sleep(0.2)  # let the writer drain between rounds
    finally:
        gc.enable()
    await writer.stop()
    return samples


async def bench_writer(db: Database, journal: Path, n: int, queue_size: int) -> tuple[float, float]:
    """(records/s wall clock, CPU µs of this process per record) from submit to committed."""
    writer = LedgerWriter(LedgerSettings(queue_size=queue_size, flush_interval_s=0.2), db, journal)
    records = [make_record(i, id=f"req_{uuid.uuid4().hex}") for i in range(n)]
    await writer.start()
    await writer.flush()
    started, cpu = time.perf_counter(), time.process_time()
    for record in records:
        writer.submit(record)
    await writer.flush(timeout_s=600)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await writer.stop()
    return n / elapsed, cpu / n * 1e6


async def bench_replay(db: Database, journal: Path, n: int) -> float:
    dead = Journal(journal)
    dead.open()
    for i in range(n):
        dead.append(orjson.dumps(make_record(i, id=f"req_{uuid.uuid4().hex}"), option=orjson.OPT_APPEND_NEWLINE))
    for segment in dead.segments:
        segment.close()
    writer = LedgerWriter(LedgerSettings(), db, journal)
    started = time.perf_counter()
    await writer.start()
    await writer.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    await writer.stop()
    assert writer.replayed == n
    return n / elapsed


async def fresh_pg() -> tuple[str, str]:
    name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name, pg_url(name)


async def drop_pg(name: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def main(records: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sqlite_db = Database.from_settings(Settings(database_url=f"sqlite:///{root / 'bench.db'}"))
        await upgrade(sqlite_db.engine)
        for fsync in (False, True):
            n = 20_000 if not fsync else 2_000
            samples = await bench_on_complete(sqlite_db, root / f"j-oc-{fsync}", fsync, n)
            print(
                f"on_complete (fsync={'on' if fsync else 'off'}): median {statistics.median(samples):.1f} µs/call, "
                f"min {min(samples):.1f}, max {max(samples):.1f} (5 rounds x {n})"
            )
        pg_name, pg = await fresh_pg()
        pg_db = Database.from_settings(Settings(database_url=pg))
        await upgrade(pg_db.engine)
        try:
            for label, db in (("SQLite", sqlite_db), ("PostgreSQL", pg_db)):
                steady = await bench_writer(db, root / f"j-s-{label}", records, queue_size=records)
                catch_up = await bench_writer(db, root / f"j-c-{label}", records, queue_size=10)
                replay = await bench_replay(db, root / f"j-r-{label}", records)
                total = await count_rows(db)
                print(
                    f"writer into {label}: {steady[0]:,.0f} records/s from the queue ({steady[1]:.0f} µs CPU/record "
                    f"in this process, submit included), {catch_up[0]:,.0f} records/s catching up from the journal "
                    f"({catch_up[1]:.0f} µs CPU/record), {replay:,.0f} records/s replaying a dead journal "
                    f"({records} records each; {total} rows in the table at the end)"
                )
        finally:
            await pg_db.dispose()
            await sqlite_db.dispose()
            await drop_pg(pg_name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().records))
