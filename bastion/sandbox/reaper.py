"""Finding and killing every process of a command: by process group, and by the uid it runs as."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

#: How long the kill sweeps a uid's processes (a fork racing one sweep is caught by the next;
#: RLIMIT_NPROC bounds how many there can be), and the pause between sweeps.
_SWEEP_S = 0.5
_SWEEP_PAUSE_S = 0.005


def uid_pids(uid: int) -> list[int]:
    """The live processes (zombies are dead already) whose uid is ``uid``: /proc/<pid> belongs to
    the process's uid, so one stat per process finds them."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def uid_tasks(uid: int) -> int:
    """Tasks (threads) the kernel counts against ``uid``'s RLIMIT_NPROC."""
    tasks = 0
    for pid in uid_pids(uid):
        with contextlib.suppress(OSError):
            tasks += len(os.listdir(f"/proc/{pid}/task"))
    return tasks


def _kill_group(pid: int | None) -> None:
    if pid is not None and pid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _sweep(uid: int) -> bool:
    """SIGKILL every live process of ``uid``; False when there was none."""
    pids = uid_pids(uid)
    for victim in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
    return bool(pids)


def kill_all(pid: int | None, uid: int | None) -> None:
    """Kill the command's process group and, with a uid of its own, every process of that uid
    (a process that left the group, e.g. with setsid, is still found); bubblewrap's PID namespace
    dies with its first process anyway."""
    _kill_group(pid)
    if uid is not None:
        deadline = time.monotonic() + _SWEEP_S
        while _sweep(uid) and time.monotonic() < deadline:
            time.sleep(_SWEEP_PAUSE_S)


async def kill_all_async(pid: int | None, uid: int | None) -> None:
    """``kill_all`` without blocking the event loop while killed processes finish dying."""
    _kill_group(pid)
    if uid is not None:
        deadline = time.monotonic() + _SWEEP_S
        while _sweep(uid) and time.monotonic() < deadline:
            await asyncio.sleep(_SWEEP_PAUSE_S)
