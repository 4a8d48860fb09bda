"""Private work directories and the uids commands run as."""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

from bastion.sandbox.layout import passwd_lines
from bastion.sandbox.spec import CommandRefused


def default_work_root() -> Path:
    return Path(tempfile.gettempdir()) / "bastion-sandbox"


def host_uid_lock_dir() -> Path:
    """/run (root's, memory-backed) when it exists, else the system temp directory."""
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    return base / "bastion-sandbox-uids"


class UidPool:
    """One uid per concurrent command when the gateway is root (``None`` from ``acquire`` otherwise:
    the command keeps the gateway's uid). A uid of its own caps the command's processes with
    RLIMIT_NPROC (never enforced for root) and lets the sandbox find and kill all of them.

    A uid is held with an exclusive ``flock`` on ``<lock_dir>/<uid>.lock`` in one directory for the
    whole host (a uid is the host's, whatever the work root), so no two processes, of one gateway
    or of several, run commands as the same uid at once (the lock goes with a process that dies).
    Uids are tried in rotation, so a uid whose killed processes are still being reaped (they count
    against RLIMIT_NPROC until then) is not the next one given out. ``shared`` gives every sandbox
    of a process the same pool."""

    _pools: ClassVar[dict[tuple[int, int, Path], UidPool]] = {}

    def __init__(self, base: int, count: int, lock_dir: Path) -> None:
        self._order = collections.deque(range(base, base + count))
        self._held: dict[int, int] = {}  # uid -> the descriptor holding its lock
        self.lock_dir = lock_dir
        self.enabled = os.geteuid() == 0

    @classmethod
    def shared(cls, base: int, count: int, lock_dir: Path | None = None) -> UidPool:
        lock_dir = lock_dir or host_uid_lock_dir()
        return cls._pools.setdefault((base, count, lock_dir), cls(base, count, lock_dir))

    def acquire(self) -> int | None:
        if not self.enabled:
            return None
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_owned(self.lock_dir)
        for _ in range(len(self._order)):
            uid = self._order[0]
            self._order.rotate(-1)
            if uid in self._held:
                continue
            fd = os.open(self.lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held[uid] = fd
            return uid
        raise CommandRefused("too many sandboxed commands at once")

    def release(self, uid: int | None) -> None:
        fd = self._held.pop(uid, None) if uid is not None else None
        if fd is not None:
            os.close(fd)  # and with it the lock


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("..", "") for part in name.split("/")):
        raise CommandRefused(f"bad file name: {name!r} (a relative path inside the work directory)")
    return path


def _check_owned(work_root: Path) -> None:
    """Refuse a work root someone else could tamper with (e.g. pre-created in a shared /tmp)."""
    info = os.lstat(work_root)
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise CommandRefused(f"sandbox directory {work_root} must be the gateway user's, not writable by others")


@dataclass(slots=True)
class RunDir:
    """``<root>/run-xxxx/``: ``work/`` (the command's, read-write) and ``passwd``/``group``."""

    root: Path
    work: Path
    passwd: Path
    group: Path

    @classmethod
    def create(cls, work_root: Path, uid: int | None, files: Mapping[str, bytes]) -> RunDir:
        for name in files:
            _safe_relative(name)  # refuse before anything is created
        work_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        _check_owned(work_root)
        root = Path(tempfile.mkdtemp(prefix="run-", dir=work_root))
        try:
            os.chmod(root, 0o711)  # traversable by the run uid, not listable
            work = root / "work"
            work.mkdir(mode=0o700)
            for name, data in files.items():
                target = work / _safe_relative(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            passwd_text, group_text = passwd_lines(1000)
            passwd, group = root / "passwd", root / "group"
            passwd.write_text(passwd_text)
            group.write_text(group_text)
            for path in (passwd, group):
                os.chmod(path, 0o644)
            if uid is not None:
                for dirpath, dirnames, filenames in os.walk(work):
                    os.chown(dirpath, uid, uid)
                    for entry in dirnames + filenames:
                        os.chown(os.path.join(dirpath, entry), uid, uid, follow_symlinks=False)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, work, passwd, group)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
