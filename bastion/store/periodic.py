"""A sweep that runs every few seconds in the background: expired rows, stale sessions, old files.

One loop for every service that keeps a table tidy: it sleeps, calls the sweep, logs what it did,
and survives a failed round (database down or not migrated yet: it tries again next round).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog


class PeriodicSweep:
    """Runs ``sweep`` every ``interval_s`` seconds between ``start`` and ``stop``; ``sweep`` returns
    how many things it removed (or otherwise handled), logged as ``event`` (default
    ``<name>_expired``) when not zero."""

    def __init__(
        self,
        name: str,
        interval_s: Callable[[], float],
        sweep: Callable[[], Awaitable[int]],
        logger_name: str,
        event: str | None = None,
    ) -> None:
        self.name = name
        self._event = event or f"{name}_expired"
        self._interval_s = interval_s
        self._sweep = sweep
        self._log = structlog.get_logger(logger_name)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self.name}-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s())
            try:
                removed = await self._sweep()
            except Exception as exc:  # database down or not migrated yet: try again next round
                self._log.warning(f"{self.name}_sweep_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            else:
                if removed:
                    self._log.info(self._event, count=removed)
