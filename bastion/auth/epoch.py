"""The auth epoch: a value every process reads per request and any process changes on a change.

Each process caches verified credentials (``cache.py``); a cached entry is only trusted while the
epoch it was verified under is still the current one. Revoking a key, disabling a user or changing
settings bumps the epoch, so every process drops its cache on its very next request instead of
waiting for a TTL.

The epoch must never read as "unchanged" after its state was lost, or an entry cached before a
revocation would be trusted again. So it never restarts from a known value: whenever it is
(re)created it starts from a random 62-bit number (its *generation*), and a value seen before does
not come back. Two places hold it:

* Redis (``redis_url`` set): ``GET <auth.epoch_key>``, one pipelined round trip per request, shared
  by every process on every machine; a bump is ``INCR`` (in a script that first creates a missing
  key at a random value). The epoch is *unknown*, and callers must not trust their caches (they
  verify against the database and cache nothing), when Redis cannot be reached and when the key is
  missing (``FLUSHDB``, a restart without persistence: the reader then creates it afresh). A
  process that saw Redis fail may have missed a bump made meanwhile, so once Redis answers again it
  bumps the epoch itself before trusting any cache (and keeps retrying in the background until it
  has), which also delivers a bump that failed during the outage.
* Otherwise a memory-mapped 16-byte file beside the SQLite database (``bastion.db`` ->
  ``bastion.db.auth.epoch``; ``<data_dir>/auth.epoch`` for other databases): an 8-byte counter and
  an 8-byte generation, shared by every process on this machine through the page cache; the value
  is ``generation * 2**64 + counter``, the generation read once when the file is opened. Reading it
  is a memory load, so the embedded single-process default pays nanoseconds, and several workers or
  the CLI on the same machine see each other's revocations at once. A file deleted or replaced
  under running processes is noticed within ``FILE_RECHECK_S`` (a ``stat``) and followed: the new
  file has a new generation. It cannot span machines: several machines (or processes with
  different data directories on PostgreSQL) need Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import secrets
import struct
import time
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy.engine import make_url

from bastion.auth.metrics import EPOCH_UNAVAILABLE
from bastion.config.settings import Settings
from bastion.store.db import database_url, is_sqlite

log = structlog.get_logger("bastion.auth")

EPOCH_FILE_NAME = "auth.epoch"
#: The epoch file: a counter (offset 0, where earlier versions kept their only field) and a generation.
_COUNTER = struct.Struct("<Q")
_FILE = struct.Struct("<QQ")
#: Seconds between two checks that the epoch file is still the one at its path.
FILE_RECHECK_S = 1.0
#: Seconds between two log lines about an unreachable Redis (the metric counts every failure).
_LOG_EVERY_S = 10.0
#: Seconds between attempts to bump the epoch after an outage (doubling up to the maximum).
RECOVERY_RETRY_S = 0.5
_RECOVERY_RETRY_MAX_S = 5.0

#: Bumps the Redis epoch; a missing key is first created at a random value (never at 0, which a
#: process may have seen before the key was lost). KEYS[1] the key, ARGV[1] the random start.
BUMP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""


def new_generation() -> int:
    """A random start for a (re)created epoch: far from any value seen before, and leaving INCR
    room enough for every bump there will ever be (Redis integers are signed 64-bit)."""
    return (1 << 61) + secrets.randbelow(1 << 61)


class _Unknown:
    """The epoch could not be read: equal to nothing, so no cached entry is ever trusted."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "UNKNOWN_EPOCH"


UNKNOWN: Final = _Unknown()


class FileEpoch:
    """A 16-byte counter-and-generation in a shared memory-mapped file (one machine)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        #: (st_dev, st_ino) of the open file, to notice it being deleted or replaced.
        self._identity: tuple[int, int] | None = None
        self._next_check = 0.0
        self._generation = 0
        #: Used when the file cannot be opened (read-only data directory): this process only.
        self._memory = 0
        if path is not None:
            try:
                self._open(path)
            except OSError as exc:
                log.warning("auth_epoch_file_unavailable", path=str(path), error=str(exc))

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Serialised with bumps and other openers: a new (or pre-generation, 8-byte) file gets
            # exactly one generation.
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < _FILE.size:
                    os.ftruncate(fd, _FILE.size)
                mapped = mmap.mmap(fd, _FILE.size)
                counter, generation = _FILE.unpack_from(mapped, 0)
                if generation == 0:
                    generation = new_generation()
                    _FILE.pack_into(mapped, 0, counter, generation)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            stat = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._map = fd, mapped
        # Fixed for the file's life: a read adds it to the counter, so values of two files differ.
        self._generation = generation << 64
        self._identity = (stat.st_dev, stat.st_ino)
        self._next_check = time.monotonic() + FILE_RECHECK_S

    @property
    def shared(self) -> bool:
        return self._map is not None

    def read(self, now: float | None = None) -> int:
        """The current value; ``now`` is ``time.monotonic()`` if the caller has just read it."""
        mapped = self._map
        if mapped is None:
            return self._memory
        if (time.monotonic() if now is None else now) >= self._next_check:
            self._follow_path()
            mapped = self._map
            if mapped is None:
                return self._memory
        # A read racing a bump may see a torn value; it then differs from every cached epoch,
        # which only costs a cache miss.
        return _COUNTER.unpack_from(mapped, 0)[0] + self._generation  # type: ignore[no-any-return]

    def _follow_path(self) -> None:
        """Reopen the file at ``path`` if it is no longer the one mapped (deleted or replaced):
        processes that open it from now on use that one, and its generation is new."""
        assert self.path is not None
        self._next_check = time.monotonic() + FILE_RECHECK_S
        try:
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._identity:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return  # the directory is unreadable for now: keep the file we have
        log.warning("auth_epoch_file_replaced", path=str(self.path), effect="cached credentials are re-verified")
        self.close()
        try:
            self._open(self.path)
        except OSError as exc:
            log.warning("auth_epoch_file_unavailable", path=str(self.path), error=str(exc))
            self._memory += 1  # this process's caches are stale either way

    def bump(self) -> int:
        if self.path is not None and self._map is not None:
            self._follow_path()  # a bump must reach the file other processes will read
        if self._map is None or self._fd is None:
            self._memory += 1
            return self._memory
        # flock serialises read-increment-write between processes (CLI and gateway workers).
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = (_COUNTER.unpack_from(self._map, 0)[0] + 1) & 0xFFFFFFFFFFFFFFFF
            _COUNTER.pack_into(self._map, 0, value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RedisEpoch:
    """The epoch in Redis, shared by every process that uses the same Redis and key.

    Read through the limiter's pipelined channel (``bastion.store.channel``): a few µs of CPU per
    GET where redis-py's client costs ~100 µs, and GETs of concurrent requests share one write.
    """

    def __init__(self, url: str, key: str, timeout_s: float = 1.0, retry_s: float = RECOVERY_RETRY_S) -> None:
        from bastion.store.channel import RedisChannel

        self.channel = RedisChannel.from_url(url, timeout_s=timeout_s)
        self.key = key
        self.retry_s = retry_s
        self._last_log = 0.0
        #: A read or bump failed since the last successful bump: a bump may have been missed.
        self.suspect = False
        self._recovery: asyncio.Task[None] | None = None
        self._retrying: asyncio.Task[None] | None = None

    async def read(self) -> bytes | _Unknown:
        """The current value, or ``UNKNOWN``: Redis unreachable, the key missing, or Redis back
        after a failure and the epoch not bumped since."""
        try:
            value = await self.channel.call("GET", self.key)
        except Exception as exc:  # any Redis failure degrades to "verify against the database"
            self._lost("read", exc)
            return UNKNOWN
        if self.suspect:
            await self._recover()
            return UNKNOWN
        if value is None:
            await self._create()
            return UNKNOWN
        return value  # type: ignore[no-any-return]

    async def bump(self) -> bool:
        try:
            await self.channel.call("EVAL", BUMP_SCRIPT, 1, self.key, new_generation())
        except Exception as exc:
            self._lost("bump", exc)
            return False
        return True

    async def _create(self) -> None:
        """The key is gone (or was never made): start it afresh at a random value. Entries cached
        under the old value are never trusted again, whoever creates the new one."""
        try:
            await self.channel.call("SET", self.key, new_generation(), "NX")
        except Exception as exc:
            self._lost("create", exc)

    async def _recover(self) -> None:
        """Bump once after a failure (one attempt at a time however many requests wait for it)."""
        task = self._recovery
        if task is None or task.done():
            task = self._recovery = asyncio.get_running_loop().create_task(self._bump_after_failure())
        await asyncio.shield(task)

    async def _bump_after_failure(self) -> None:
        if await self.bump():
            self.suspect = False
            log.info("auth_epoch_recovered", effect="every process re-verifies its cached credentials once")

    async def _retry(self) -> None:
        """Keep trying to bump while suspect, so a revocation made during an outage reaches the
        other processes as soon as Redis is back, even if this process serves no request."""
        delay = self.retry_s
        while self.suspect:
            await asyncio.sleep(delay)
            await self._recover()
            delay = min(delay * 2, _RECOVERY_RETRY_MAX_S)

    def _lost(self, operation: str, exc: Exception) -> None:
        self.suspect = True
        self._failed(operation, exc)
        with contextlib.suppress(RuntimeError):  # no running loop: the next read recovers
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def aclose(self) -> None:
        for task in (self._retrying, self._recovery):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.channel.aclose()

    def _failed(self, operation: str, exc: Exception) -> None:
        EPOCH_UNAVAILABLE.labels(operation=operation).inc()
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            log.warning(
                "auth_epoch_redis_unavailable",
                operation=operation,
                error=f"{type(exc).__name__}: {exc}",
                effect="credentials are verified against the database until Redis is back and the epoch bumped",
            )


def epoch_file(settings: Settings) -> Path:
    """Where the shared epoch file lives: beside the SQLite database (every process and CLI that
    uses that database shares it, whatever their data directories), else in the data directory."""
    url = database_url(settings)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            path = Path(database).resolve()
            return path.with_name(path.name + "." + EPOCH_FILE_NAME)
    return Path(settings.data_dir).resolve() / EPOCH_FILE_NAME
