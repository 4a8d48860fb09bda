"""Hand freed memory back to the system.

A burst of streams (or of clients that stop reading) grows the heap; once they are gone, glibc
keeps most of the freed memory in its arenas, so the process's RSS stays at the burst's peak.
``malloc_trim(0)`` returns the free pages of every arena. Before it, a full garbage collection
frees what only reference cycles still hold: a cancelled stream's task, exception and frames
form cycles that keep its buffers and text alive until the (rare) oldest-generation collection.
Both run on a timer, and only when the RSS has grown since the last trim, or when connections went
away since then while the RSS is still above its floor (what they held was freed into the arenas,
which does not lower the RSS by itself), so an idle or steady worker pays one ``/proc`` read per
interval.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("bastion.server")

#: RSS growth since the last trim below which trimming is not worth its pause.
MIN_GROWTH_BYTES = 8 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim  # glibc only: musl and macOS have none
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def rss_bytes() -> int:
    """The process's resident set size (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryTrimmer:
    """Every ``interval_s``, trims the heap if the RSS grew by ``MIN_GROWTH_BYTES`` since the last trim."""

    def __init__(self, interval_s: float, load: Callable[[], int] = lambda: 0) -> None:
        self.interval_s = interval_s
        #: How much the worker is holding now (its open connections).
        self.load = load
        self._trim = _load_malloc_trim()
        self._task: asyncio.Task[None] | None = None
        self._baseline = 0
        #: The lowest RSS after a trim: where a worker that holds nothing for clients sits.
        self._floor = 0
        self._load_at_trim = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def start(self) -> None:
        """Start on the running loop (once); a no-op without glibc or with a zero interval."""
        if self._task is not None or self._trim is None or self.interval_s <= 0:
            return
        self._baseline = self._floor = rss_bytes()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bastion-memory-trim")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.trim_if_grown()

    def trim_if_grown(self) -> bool:
        """Trim now if the RSS grew enough since the last trim; whether it trimmed."""
        if self._trim is None:
            return False
        before = rss_bytes()
        load = self.load()
        grown = before - self._baseline >= MIN_GROWTH_BYTES
        released = load < self._load_at_trim and before - self._floor >= MIN_GROWTH_BYTES
        if not grown and not released:
            # Shrunk (or barely grew): follow it down, so the next burst is measured from here.
            self._baseline = min(self._baseline, before)
            self._load_at_trim = min(self._load_at_trim, load)
            return False
        started = time.perf_counter()
        gc.collect()
        self._trim(0)
        after = rss_bytes()
        self._baseline = after
        self._floor = min(self._floor, after) if self._floor else after
        self._load_at_trim = load
        log.debug(
            "memory_trimmed",
            released_mb=round((before - after) / (1 << 20), 1),
            rss_mb=round(after / (1 << 20), 1),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return True
