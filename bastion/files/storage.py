"""Uploaded files on disk: ``<directory>/<2 hex digits>/<file id>``, written through a temporary
file in ``<directory>/tmp`` and renamed into place once complete, so a file is either whole
under its name or not there at all (a crash mid-upload leaves only a temporary file, removed by
the next start or sweep once it is a day old).

Every worker of every process may share the directory (a file system shared by the machines
that serve the same database); names are unique (``file-`` and a random UUID).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Final

from bastion.errors import BastionError, PayloadTooLarge

TMP_DIR: Final = "tmp"
#: A temporary file untouched this long belongs to an upload that will never finish.
STALE_UPLOAD_S: Final = 24 * 3600.0


def storage_failed(exc: OSError) -> BastionError:
    """A disk that refuses the bytes (full, read-only, gone) is the gateway's trouble, not the
    caller's: 503, saying why, rather than a bare 500."""
    error = BastionError(
        f"The gateway cannot store files now ({exc.strerror or type(exc).__name__}); try again later.",
        status=503,
        code="storage_unavailable",
    )
    error.error_type = "api_error"
    return error


def _mb(size: int) -> str:
    return f"{size / 1_000_000:g} MB" if size >= 1_000_000 else f"{size} bytes"


class PendingUpload:
    """An upload being received: bytes go to a temporary file, counted and hashed; more than
    ``max_bytes`` raises 413 at once (the rest of the body is never read)."""

    def __init__(self, tmp_dir: Path, max_bytes: int) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self.committed = False

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            raise RuntimeError("the upload is closed")
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"File is larger than the {_mb(self.max_bytes)} limit ({self.max_bytes:,} bytes).",
                param="file",
                code="file_too_large",
            )
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as exc:
            raise storage_failed(exc) from exc

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> None:
        """All bytes received: flush them to disk (before the rename makes the file visible)."""
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise storage_failed(exc) from exc
            self._file.close()
            self._file = None

    def open(self) -> BinaryIO:
        """The bytes received, for reading (validation before the file is committed)."""
        return self.path.open("rb")

    def commit(self, target: Path) -> None:
        """Move the finished file to ``target`` (atomic: same file system)."""
        self.finish()
        try:
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(self.path, target)
        except OSError as exc:
            raise storage_failed(exc) from exc
        self.committed = True

    def discard(self) -> None:
        """Close and remove the temporary file (nothing once committed)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class FileStorage:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.tmp_dir = directory / TMP_DIR
        self.max_bytes = max_bytes

    def prepare(self) -> None:
        """Create the directories (0700) and remove abandoned temporary files."""
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.remove_stale_uploads()

    def remove_stale_uploads(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - STALE_UPLOAD_S
        removed = 0
        for entry in self.tmp_dir.glob("upload-*.part"):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
        return removed

    def begin(self) -> PendingUpload:
        try:
            self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return PendingUpload(self.tmp_dir, self.max_bytes)
        except OSError as exc:
            raise storage_failed(exc) from exc

    def path(self, file_id: str) -> Path:
        # Ids are made here (file- and hex), never taken from a client unchecked (see service).
        return self.directory / file_id[-2:] / file_id

    def open(self, file_id: str) -> BinaryIO:
        """The stored bytes (``FileNotFoundError`` if they are gone). An open file stays
        readable when the file is deleted meanwhile."""
        return self.path(file_id).open("rb")

    def remove(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()
