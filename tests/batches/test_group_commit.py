"""Group commit of line outcomes: every outcome is stored before its line goes on, outcomes that
arrive during a write share the next one, and a failed write fails exactly the lines it held."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bastion.batches.group_commit import GroupCommit
from bastion.jobs.model import ItemOutcome


class SlowStore:
    def __init__(self, fail_on: str | None = None) -> None:
        self.writes: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def write_items(self, items: Sequence[ItemOutcome]) -> int:
        keys = [item.key for item in items]
        self.writes.append(keys)
        await self.release.wait()
        if self.fail_on in keys:
            raise OSError("database went away")
        return len(keys)


async def test_outcomes_arriving_during_a_write_share_the_next_one() -> None:
    store = SlowStore()
    writer = GroupCommit(store.write_items)
    first = asyncio.create_task(writer.write(ItemOutcome("a")))
    await asyncio.sleep(0)  # the first write is under way
    rest = [asyncio.create_task(writer.write(ItemOutcome(key))) for key in ("b", "c", "d")]
    await asyncio.sleep(0)
    assert not any(task.done() for task in (first, *rest))  # nobody goes on before its outcome is stored
    store.release.set()
    await asyncio.gather(first, *rest)
    assert store.writes == [["a"], ["b", "c", "d"]]


async def test_a_failed_write_fails_the_lines_it_held_and_the_writer_recovers() -> None:
    store = SlowStore(fail_on="a")
    writer = GroupCommit(store.write_items)
    first = asyncio.create_task(writer.write(ItemOutcome("a")))
    await asyncio.sleep(0)
    second = asyncio.create_task(writer.write(ItemOutcome("b")))
    await asyncio.sleep(0)
    store.release.set()
    with pytest.raises(OSError):
        await first
    with pytest.raises(OSError):
        await second  # queued behind the failed write: not stored, so its line fails too
    await writer.write(ItemOutcome("c"))  # a later outcome starts a new writer
    assert store.writes[-1] == ["c"]
