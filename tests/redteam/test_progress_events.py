"""The progress stream's events in isolation: progress only when more attempts are done, a
keep-alive when nothing moves, ``done`` at the end, and a resume after ``Last-Event-ID``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bastion.redteam.progress import CategoryTally, run_events


class _Views:
    """A run whose view follows a script of (status, done); the last one repeats."""

    def __init__(self, script: list[tuple[str, int]]) -> None:
        self.script = script
        self.jobs = SimpleNamespace(items=self._items)

    async def _items(self, job_id: str, limit: int, after: str | None) -> list[Any]:
        ok = SimpleNamespace(key="000000", result={"category": "jailbreak", "success": True})
        failed = SimpleNamespace(key="000001", result=None)
        return [item for item in (ok, failed) if after is None or item.key > after]

    async def view(self, tenant_id: str, run_id: str) -> Any:
        status, done = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        run = SimpleNamespace(id=run_id, job_id="job_1")
        return SimpleNamespace(run=run, status=status, done=done, total=4, to_json=lambda: {"status": status})


async def _events(script: list[tuple[str, int]], last_id: int | None = None) -> list[tuple[str, int | None]]:
    service: Any = _Views(script)
    stream = run_events(service, "t", "r", last_id=last_id, poll_s=0.001, keepalive_s=0.003)
    return [(event.kind, event.id) async for event in stream]


async def test_progress_then_keepalive_while_nothing_moves_then_done() -> None:
    script = [("running", 1)] * 6 + [("running", 2), ("succeeded", 4)]
    events = await _events(script)
    assert events[0] == ("progress", 1) and events[-2:] == [("progress", 4), ("done", None)]
    assert ("keepalive", None) in events and ("progress", 2) in events
    assert [e for e in events if e[0] == "progress"] == [("progress", 1), ("progress", 2), ("progress", 4)]


async def test_a_resume_skips_what_was_sent() -> None:
    assert await _events([("running", 2), ("succeeded", 4)], last_id=2) == [("progress", 4), ("done", None)]
    assert await _events([("succeeded", 4)], last_id=4) == [("done", None)]


class _Items:
    """Job items that appear out of order, as concurrent attempts write them."""

    def __init__(self) -> None:
        self.written: dict[int, Any] = {}
        self.reads: list[int] = []
        self.jobs = SimpleNamespace(items=self.items)

    def write(self, index: int, category: str, success: bool | None) -> None:
        result = None if success is None else {"category": category, "success": success}
        self.written[index] = SimpleNamespace(key=f"{index:06d}", result=result)

    async def items(self, job_id: str, limit: int, after: str | None) -> list[Any]:
        page = [self.written[i] for i in sorted(self.written) if after is None or f"{i:06d}" > after][:limit]
        self.reads.append(len(page))
        return page


async def test_the_tally_counts_each_item_once_whatever_order_they_arrive_in() -> None:
    items = _Items()
    tally = CategoryTally(items, "job_1")  # type: ignore[arg-type]
    items.write(0, "jailbreak", True)
    items.write(2, "encoding", False)
    assert await tally.update() == {"encoding": {"attempts": 1, "successes": 0},
                                    "jailbreak": {"attempts": 1, "successes": 1}}  # fmt: skip
    items.write(1, "jailbreak", None)  # no answer: not judged
    items.write(3, "jailbreak", True)
    assert await tally.update() == {"encoding": {"attempts": 1, "successes": 0},
                                    "jailbreak": {"attempts": 2, "successes": 2}}  # fmt: skip
    items.write(4, "encoding", True)
    assert (await tally.update())["encoding"] == {"attempts": 2, "successes": 1}
    # Items 0-3 are counted and below the floor: the last read started after them.
    assert items.reads == [2, 3, 1]
