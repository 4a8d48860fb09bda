"""The ledger's local journal: append-only segment files, one set per process.

A record is one JSON line. It is appended with a single ``os.write`` on an ``O_APPEND`` descriptor
before the client gets its answer, so once the answer has left, the line is in the kernel's page
cache and survives a crash of the process (``fsync`` makes it survive power loss too).

Files in the journal directory::

    <owner>.<seq>.jsonl        a segment: records, one per line
    <owner>.<seq>.jsonl.ckpt   its checkpoint: the byte offset up to which records are in the database
    <owner>.<seq>.jsonl.tmp    a segment being created (invisible to replay until it is locked)

Ownership is an exclusive ``flock`` held on every segment its process still needs (the open append
descriptor holds it). A process that dies loses its locks with its descriptors, so "I can lock this
segment" means "its owner is gone": that is how replay tells dead processes' segments from live ones,
on one machine, with any number of processes sharing the directory. ``flock`` (not ``lockf``) is
used because its locks belong to the open file, so a second descriptor in the same process cannot
release or steal them. The directory must be on a local file system.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("bastion.ledger")

SEGMENT_SUFFIX = ".jsonl"
CHECKPOINT_SUFFIX = ".ckpt"
TMP_SUFFIX = ".tmp"
#: Bytes read from a segment at a time when replaying or catching up.
READ_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_checkpoint(path: Path) -> int:
    """The committed offset recorded for a segment (0 when absent or unreadable)."""
    try:
        return max(0, int(path.read_bytes().strip() or b"0"))
    except (OSError, ValueError):
        return 0


@dataclass(eq=False)
class Segment:
    """One journal file, locked by this process while open."""

    path: Path
    fd: int
    #: Order of the segment within its owner's journal (orphans: 0).
    seq: int = 0
    #: Bytes of complete records in the file: the append position and the end of what can be read.
    size: int = 0
    #: No more appends (rotated, or a write failed part-way): done once committed up to ``size``.
    sealed: bool = False
    ckpt_fd: int | None = None
    committed: int = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.path.with_name(self.path.name + CHECKPOINT_SUFFIX)

    def read(self, start: int, end: int | None = None, max_records: int = 1 << 30) -> tuple[list[Any], int, int]:
        """Records between byte ``start`` and ``end`` (the size when None).

        Returns ``(records, next_offset, bad_lines)``. A last line with no newline is a torn write
        and ends the read before it; a line that is not JSON is skipped and counted.
        """
        return read_records(self.fd, start, self.size if end is None else end, max_records)

    def checkpoint(self, offset: int) -> None:
        """Record that everything before ``offset`` is in the database.

        Fixed-width, in place, no fsync: a lost or torn checkpoint only means some records are
        inserted again, and inserts are idempotent.
        """
        self.committed = offset
        if self.ckpt_fd is None:
            self.ckpt_fd = os.open(self.checkpoint_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.pwrite(self.ckpt_fd, b"%020d\n" % offset, 0)

    def close(self) -> None:
        """Close the descriptors, which releases the lock; the files stay for a later replay."""
        if self.ckpt_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.ckpt_fd)
            self.ckpt_fd = None
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        """Remove the segment and its checkpoint (all of it is in the database), then unlock."""
        # Unlink while still locked, so nobody can claim a segment that is being removed.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.checkpoint_path.unlink()
        self.close()


def read_records(fd: int, start: int, end: int, max_records: int = 1 << 30) -> tuple[list[Any], int, int]:
    """Parse the JSON lines of ``fd`` in ``[start, end)``; see ``Segment.read``."""
    records: list[Any] = []
    bad = 0
    offset = start
    while offset < end and len(records) < max_records:
        chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
        if not chunk:
            break
        last_newline = chunk.rfind(b"\n")
        if last_newline < 0:
            if len(chunk) == READ_CHUNK:
                # A single line longer than a chunk: read it whole.
                whole = _read_line(fd, offset, end)
                if whole is None:
                    break
                chunk, last_newline = whole, len(whole) - 1
            else:
                break  # torn last line: the write never completed
        position = offset
        for line in chunk[: last_newline + 1].split(b"\n")[:-1]:
            position += len(line) + 1
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if len(records) >= max_records:
                return records, position, bad
        offset = position
    return records, offset, bad


def _read_line(fd: int, offset: int, end: int) -> bytes | None:
    parts: list[bytes] = []
    position = offset
    while position < end:
        chunk = os.pread(fd, min(READ_CHUNK, end - position), position)
        if not chunk:
            return None
        newline = chunk.find(b"\n")
        if newline >= 0:
            parts.append(chunk[: newline + 1])
            return b"".join(parts)
        parts.append(chunk)
        position += len(chunk)
    return None


@dataclass
class Journal:
    """This process's segments: appends go to the newest; older ones wait to be committed."""

    directory: Path
    max_segment_bytes: int = 64 * 1024 * 1024
    fsync: bool = False
    #: Unique per process start, sortable by start time: names this process's segments.
    owner: str = field(default_factory=lambda: f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}")
    segments: list[Segment] = field(default_factory=list)
    _seq: int = 0

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._new_segment()

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    def _new_segment(self) -> Segment:
        self._seq += 1
        final = self.directory / f"{self.owner}.{self._seq:06d}{SEGMENT_SUFFIX}"
        tmp = final.with_name(final.name + TMP_SUFFIX)
        # Created under a name replay ignores, locked, then renamed: a scanning process can never
        # see an unlocked segment of a live process.
        fd = os.open(tmp, _OPEN_FLAGS | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, final)
        if self.fsync:
            # With fsync on, the promise is "survives power loss": the new name must too.
            _fsync_directory(self.directory)
        segment = Segment(final, fd, seq=self._seq)
        self.segments.append(segment)
        return segment

    def append(self, line: bytes) -> tuple[Segment, int, int]:
        """Write one record line; returns ``(segment, start, end)``. Raises ``OSError`` on failure."""
        segment = self.segments[-1]
        if segment.sealed:
            # An earlier write failed and no fresh segment could be made then: try again now.
            segment = self._new_segment()
        start = segment.size
        try:
            written = os.write(segment.fd, line)
            if written != len(line):
                # Short write (disk full): finish it or give up on this segment.
                written += os.write(segment.fd, line[written:])
                if written != len(line):
                    raise OSError(f"short write to {segment.path}")
            if self.fsync:
                os.fdatasync(segment.fd)
        except OSError:
            # Whatever part of the line reached the file lies beyond ``size`` (a torn line, ignored
            # by every reader); appending after it would glue the next record to it. Seal this
            # segment: the next append starts a fresh one.
            segment.sealed = True
            with contextlib.suppress(OSError):
                self._new_segment()
            raise
        segment.size = start + written
        if segment.size >= self.max_segment_bytes:
            segment.sealed = True
            # If no new segment can be made now, the next append tries again (and reports it).
            with contextlib.suppress(OSError):
                self._new_segment()
        return segment, start, segment.size

    def pending_bytes(self) -> int:
        return sum(s.size - s.committed for s in self.segments)

    def retire(self, segment: Segment) -> None:
        """A sealed segment is fully committed: delete it."""
        segment.delete()
        self.segments.remove(segment)

    def close(self) -> None:
        """Delete fully committed segments, keep the rest for replay, release every lock."""
        for segment in self.segments:
            if segment.committed >= segment.size:
                segment.delete()
            else:
                segment.close()
        self.segments.clear()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(eq=False)
class Orphan:
    """A segment of a process that is gone, claimed (locked) by this one for replay."""

    segment: Segment
    start: int


def claim_orphans(directory: Path) -> Iterator[Orphan]:
    """Lock and yield the segments no live process holds, oldest first, each with its checkpoint.

    Leftovers with nothing to replay (a ``.tmp`` of a process that died while creating a segment,
    checkpoints of deleted segments) are removed on the way.
    """
    if not directory.is_dir():
        return
    names = sorted(p.name for p in directory.iterdir())
    present = set(names)
    for name in names:
        path = directory / name
        if name.endswith(SEGMENT_SUFFIX + TMP_SUFFIX):
            _remove_stale_tmp(path)
            continue
        if name.endswith(SEGMENT_SUFFIX + CHECKPOINT_SUFFIX):
            if name[: -len(CHECKPOINT_SUFFIX)] not in present:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            continue
        if not name.endswith(SEGMENT_SUFFIX):
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # replayed and removed by another process meanwhile
        if not _try_lock(fd):
            os.close(fd)
            continue  # its owner is alive
        if not path.exists():
            os.close(fd)  # another process finished it between our open and our lock
            continue
        segment = Segment(path, fd, size=os.fstat(fd).st_size, sealed=True)
        start = min(read_checkpoint(segment.checkpoint_path), segment.size)
        segment.committed = start
        yield Orphan(segment, start)


#: A ``.tmp`` segment younger than this may be one a live process is creating right now.
_TMP_GRACE_S = 60.0


def _remove_stale_tmp(path: Path) -> None:
    try:
        if time.time() - path.stat().st_mtime < _TMP_GRACE_S:
            return
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if _try_lock(fd):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)
