"""The roll-up job: incremental runs equal a rebuild, re-running changes nothing, late rows and
rows committed out of order are rolled up, retention prunes."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import Table, func, select, update

from bastion.insights import tables
from bastion.insights.rollup import Rollup
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.insights.synthetic import BASE, NOW, dump, insert, records, rollup

_LEDGER: Table = Interaction.__table__  # type: ignore[assignment]


async def test_random_increments_equal_a_full_rebuild(database: Database) -> None:
    rows = records(3000, seed=11)
    rng = random.Random(5)
    engine = rollup(database)
    position = 0
    runs = 0
    while position < len(rows):
        step = rng.randint(1, 700)
        await insert(database, rows[position : position + step])
        position += step
        await engine.run()
        runs += 1
    assert runs > 3
    incremental = await dump(database)
    assert incremental, "the roll-up wrote nothing"
    again = await engine.run()
    assert await dump(database) == incremental  # re-running is a no-op
    assert again.watermark == await engine.watermark()
    await engine.rebuild()
    assert await dump(database) == incremental


async def test_counts_match_the_ledger_at_every_grain(database: Database) -> None:
    rows = records(1500, seed=3)
    await insert(database, rows)
    await rollup(database).run()
    async with database.engine.connect() as connection:
        for grain in tables.GRAINS:
            query = select(func.sum(tables.rollups.c.requests), func.sum(tables.rollups.c.prompt_tokens)).where(
                tables.rollups.c.grain == grain
            )
            requests, prompt_tokens = (await connection.execute(query)).one()
            assert int(requests) == len(rows)
            assert int(prompt_tokens) == sum(r["prompt_tokens"] for r in rows)


async def test_a_late_row_and_a_row_committed_before_the_watermark_are_rolled_up(database: Database) -> None:
    rows = records(200, seed=8)
    engine = rollup(database)
    await insert(database, rows[:100])
    await engine.run()
    watermark = await engine.watermark()
    assert watermark is not None
    # A row from a journal replay: its request is a day older than anything rolled up so far.
    late = dict(rows[100], ts=(BASE - timedelta(hours=-1)).timestamp())
    await insert(database, [late])
    # A row whose transaction took its timestamp before the watermark but committed after the run.
    await insert(database, [rows[101]])
    async with database.engine.begin() as connection:
        await connection.execute(
            update(_LEDGER).where(_LEDGER.c.id == rows[101]["id"]).values(written_at=watermark - timedelta(seconds=30))
        )
    await engine.run()
    async with database.engine.connect() as connection:
        total = (
            await connection.execute(select(func.sum(tables.rollups.c.requests)).where(tables.rollups.c.grain == "1d"))
        ).scalar()
    assert total is not None and int(total) == 102


async def test_retention_prunes_old_grains_and_ledger_rows(database: Database) -> None:
    await insert(database, records(300, seed=2))
    engine = rollup(database, retention={"rollup_5m_days": 1, "ledger_days": 2})
    await engine.rebuild()
    removed = await engine.prune()
    assert removed["5m"] > 0
    assert removed["ledger"] > 0
    async with database.engine.connect() as connection:
        oldest = (
            await connection.execute(select(func.min(tables.rollups.c.bucket)).where(tables.rollups.c.grain == "5m"))
        ).scalar()
        left = (await connection.execute(select(func.count()).select_from(_LEDGER))).scalar()
    assert oldest is not None and oldest >= BASE + timedelta(days=2)
    assert left is not None and 0 < left < 300


async def test_one_roll_up_at_a_time(database: Database) -> None:
    first, second = rollup(database), rollup(database)
    assert await first.claim("job_a")
    assert not await second.claim("job_b")
    assert await first.claim("job_a")  # the holder may claim again
    await first.release("job_a")
    assert await second.claim("job_b")


async def test_an_idle_ledger_is_not_read_again_once_the_slack_has_passed(database: Database) -> None:
    await insert(database, records(50, seed=12))
    engine = rollup(database, commit_slack_s=0)
    assert (await engine.run()).rows_read == 50
    again = await engine.run()
    assert (again.rows_read, again.buckets) == (0, 0)


async def test_a_run_is_due_only_with_new_rows_or_pending_retention(database: Database) -> None:
    engine = rollup(database, commit_slack_s=0)
    assert not await engine.due()  # nothing at all
    await insert(database, records(20, seed=13))
    assert await engine.due()
    await engine.run()
    assert not await engine.due()
    later = Rollup(database, engine.settings, clock=lambda: NOW + timedelta(hours=2))
    assert await later.due()  # retention has not run for an hour


async def test_red_team_attempts_are_left_out(database: Database) -> None:
    """Attempts of a red-team run (``extra.redteam_run``) are measured by the run's report, not
    counted as production requests, errors or blocks."""
    rows = records(200, seed=11)
    attacks = records(50, seed=12, start=200)
    for row in attacks:
        row["extra"] = {**(row["extra"] or {}), "redteam_run": "rt_0123"}
    await insert(database, rows + attacks)
    await rollup(database).run()
    async with database.engine.connect() as connection:
        query = select(func.sum(tables.rollups.c.requests)).where(tables.rollups.c.grain == "1d")
        assert int((await connection.execute(query)).scalar_one()) == len(rows)
