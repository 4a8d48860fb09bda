"""The progress stream's events in isolation: progress only when more attempts are done, a
keep-alive when nothing moves, ``done`` at the end, and a resume after ``Last-Event-ID``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bastion.redteam.progress import run_events


class _Views:
    """A run whose view follows a script of (status, done); the last one repeats."""

    def __init__(self, script: list[tuple[str, int]]) -> None:
        self.script = script
        self.jobs = SimpleNamespace(items=self._items)

    async def _items(self, job_id: str, limit: int, after: str | None) -> list[Any]:
        ok = SimpleNamespace(key="000000", result={"category": "jailbreak", "success": True})
        failed = SimpleNamespace(key="000001", result=None)
        return [ok, failed]

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
