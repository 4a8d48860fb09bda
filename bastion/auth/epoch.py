"""The auth epoch: a counter every process reads per request and any process bumps on a change.

Each process caches verified credentials (``cache.py``); a cached entry is only trusted while the
epoch it was verified under is still the current one. Revoking a key, disabling a user or changing
settings bumps the epoch, so every process drops its cache on its very next request instead of
waiting for a TTL.

Two places hold the epoch:

* Redis (``redis_url`` set): ``GET <auth.epoch_key>``, one pipelined round trip per request, shared
  by every process on every machine. If Redis cannot be reached the epoch is *unknown*, and callers must
  not trust their caches (they verify against the database instead).
* Otherwise a memory-mapped 8-byte counter in a file beside the SQLite database (``bastion.db`` ->
  ``bastion.db.auth.epoch``; ``<data_dir>/auth.epoch`` for other databases), shared by every
  process on this machine through the page cache: reading it is a memory load (no system call),
  so the embedded single-process default pays nanoseconds, and several workers or the CLI on the
  same machine see each other's revocations at once. It cannot span machines: several machines
  (or processes with different data directories on PostgreSQL) need Redis.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
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
_COUNTER = struct.Struct("<Q")
#: Seconds between two log lines about an unreachable Redis (the metric counts every failure).
_LOG_EVERY_S = 10.0


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
    """An 8-byte little-endian counter in a shared memory-mapped file (one machine)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
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
            if os.fstat(fd).st_size < _COUNTER.size:
                # Racing creators both extend an empty file with zeros; neither loses a bump.
                os.ftruncate(fd, _COUNTER.size)
            self._map = mmap.mmap(fd, _COUNTER.size)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def shared(self) -> bool:
        return self._map is not None

    def read(self) -> int:
        if self._map is None:
            return self._memory
        # A read racing a bump may see a torn value; it then differs from every cached epoch,
        # which only costs a cache miss.
        return _COUNTER.unpack_from(self._map, 0)[0]  # type: ignore[no-any-return]

    def bump(self) -> int:
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

    def __init__(self, url: str, key: str, timeout_s: float = 1.0) -> None:
        from bastion.store.channel import RedisChannel

        self.channel = RedisChannel.from_url(url, timeout_s=timeout_s)
        self.key = key
        self._last_log = 0.0

    async def read(self) -> bytes | _Unknown:
        """The raw value (``b""`` before the first bump), or ``UNKNOWN`` if Redis is unreachable."""
        try:
            value = await self.channel.call("GET", self.key)
        except Exception as exc:  # any Redis failure degrades to "verify against the database"
            self._failed("read", exc)
            return UNKNOWN
        return b"" if value is None else value  # type: ignore[no-any-return]

    async def bump(self) -> bool:
        try:
            await self.channel.call("INCR", self.key)
        except Exception as exc:
            self._failed("bump", exc)
            return False
        return True

    async def aclose(self) -> None:
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
                effect="credentials are verified against the database on every request until Redis is back",
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
