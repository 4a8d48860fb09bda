"""The files of the OpenAI Files API: upload, list, retrieve, content, delete, and the expiry sweep.

A file belongs to its tenant and is visible to its creator (the user behind the credentials,
else the key itself) and to the tenant's admins; anyone else, another tenant above all, gets the
same 404 as for an id that does not exist. Purposes served: ``batch`` (checked line by line as a
batch input file at upload, kept 30 days unless ``expires_after`` says otherwise) and
``user_data`` (any content, kept until deleted); ``batch_output`` files are Bastion's own (a
batch's results, written with ``add_file``). The bytes live on disk (``storage.py``), the
metadata in the ``files`` table (``models.py``). Objects are in OpenAI's ``file`` shape.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

import structlog
from sqlalchemy import and_, delete, or_, select

from bastion.auth.principal import Principal, Role
from bastion.config.work_settings import FilesSettings
from bastion.errors import InvalidRequest, NotFound
from bastion.files.batch_input import validate_batch_input
from bastion.files.models import StoredFile
from bastion.files.storage import FileStorage, PendingUpload
from bastion.store.db import Database
from bastion.store.periodic import PeriodicSweep

log = structlog.get_logger("bastion.files")

BATCH: Final = "batch"
USER_DATA: Final = "user_data"
#: What clients may upload.
PURPOSES: Final = (BATCH, USER_DATA)
#: What Bastion writes itself (a batch's results; ``add_file``): listed and served like the rest.
BATCH_OUTPUT: Final = "batch_output"
#: A dataset export (bastion/review): the JSONL to upload to a provider's fine-tuning API.
FINE_TUNE: Final = "fine-tune"
ALL_PURPOSES: Final = (*PURPOSES, BATCH_OUTPUT, FINE_TUNE)
#: OpenAI's other upload purposes: named in the 400, so a client knows it is not a typo.
UNSERVED_PURPOSES: Final = ("assistants", "fine-tune", "vision", "evals")
#: OpenAI's bounds on ``expires_after.seconds`` (1 hour to 30 days), and the batch default.
MIN_EXPIRY_S: Final = 3600
MAX_EXPIRY_S: Final = 30 * 24 * 3600
BATCH_EXPIRY_S: Final = MAX_EXPIRY_S
MAX_FILENAME: Final = 512
MAX_LIST: Final = 10_000
FILE_ID: Final = re.compile(r"file-[0-9a-f]{32}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Owner:
    tenant_id: str
    kind: str
    id: str
    #: Sees every file of the tenant (its admins).
    sees_tenant: bool


def owner_of(principal: Principal) -> Owner:
    """Files belong to the user behind the credentials, else to the key itself (auth off: every
    anonymous caller of the default tenant is one owner)."""
    admin = principal.role is Role.ADMIN
    if principal.user_id:
        return Owner(principal.tenant_id, "user", principal.user_id, admin)
    return Owner(principal.tenant_id, "key", principal.key_id or "anonymous", admin)


def _owner(who: Principal | Owner) -> Owner:
    return who if isinstance(who, Owner) else owner_of(who)


def file_object(row: StoredFile) -> dict[str, Any]:
    """A row in OpenAI's ``file`` shape."""
    out: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at.timestamp()),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
    }
    if row.expires_at is not None:
        out["expires_at"] = int(row.expires_at.timestamp())
    return out


def check_purpose(purpose: str | None) -> str:
    if purpose is None or purpose == "":
        raise InvalidRequest("Invalid request: purpose is required (batch or user_data).", param="purpose")
    if purpose in PURPOSES:
        return purpose
    if purpose in UNSERVED_PURPOSES:
        raise InvalidRequest(
            f"Invalid request: purpose {purpose!r} is not served by this gateway; use batch or user_data.",
            param="purpose",
        )
    raise InvalidRequest(f"Invalid request: purpose must be batch or user_data, not {purpose[:64]!r}.", param="purpose")


def expiry_seconds(anchor: str | None, seconds: str | None) -> int | None:
    """``expires_after`` from the form (``expires_after[anchor]``, ``expires_after[seconds]``)."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest("Invalid request: expires_after.anchor must be created_at.", param="expires_after.anchor")
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise InvalidRequest(
            f"Invalid request: expires_after.seconds must be an integer from {MIN_EXPIRY_S} to {MAX_EXPIRY_S}.",
            param="expires_after.seconds",
        )
    return value


def clean_filename(name: str | None) -> str:
    """The name as stored and shown: no directories, no control characters, bounded."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = _CONTROL.sub("", base).strip()
    return base[:MAX_FILENAME] or "upload"


class FileService:
    def __init__(
        self, db: Database, settings: FilesSettings, data_dir: Path, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.db = db
        self.settings = settings
        directory = settings.directory or Path(data_dir) / "files"
        self.storage = FileStorage(Path(directory).resolve(), settings.max_bytes)
        #: UTC "now"; tests replace it to move time without sleeping.
        self.clock = clock
        self._sweeper = PeriodicSweep("files", lambda: self.settings.sweep_interval_s, self.sweep, "bastion.files")

    @property
    def max_bytes(self) -> int:
        return self.settings.max_bytes

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.storage.prepare)
        except OSError as exc:  # the rest of the gateway works without it; uploads will say why not
            log.warning("files_directory_unavailable", directory=str(self.storage.directory), error=str(exc)[:300])
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    async def sweep(self) -> int:
        """Delete every file past its expiry (row and bytes); how many this call deleted."""
        async with self.db.transaction() as session:
            now = self.clock()
            expired = select(StoredFile.id).where(StoredFile.expires_at.is_not(None), StoredFile.expires_at <= now)
            ids = [*await session.scalars(expired)]
            if ids:
                await session.execute(delete(StoredFile).where(StoredFile.id.in_(ids)))
        for file_id in ids:
            await asyncio.to_thread(self.storage.remove, file_id)
        await asyncio.to_thread(self.storage.remove_stale_uploads)
        return len(ids)

    # -- upload ------------------------------------------------------------------------------------

    def begin_upload(self) -> PendingUpload:
        """A temporary file for the upload's bytes (the caller writes them, then ``create``s or
        ``discard``s it)."""
        return self.storage.begin()

    async def create(
        self,
        principal: Principal,
        upload: PendingUpload,
        *,
        filename: str | None,
        purpose: str | None,
        expires_after_s: int | None = None,
    ) -> dict[str, Any]:
        """Store a client's upload: validate it for its purpose, move it into place, add its row."""
        purpose = check_purpose(purpose)
        await asyncio.to_thread(upload.finish)
        if upload.size == 0:
            raise InvalidRequest("Invalid request: the file is empty.", param="file")
        line_count = None
        if purpose == BATCH:
            line_count = await asyncio.to_thread(self._validate_batch, upload)
            if expires_after_s is None:
                expires_after_s = BATCH_EXPIRY_S
        return await self._keep(
            owner_of(principal),
            principal.user_id,
            principal.key_id,
            upload,
            filename,
            purpose,
            expires_after_s,
            line_count,
        )

    async def add_file(
        self,
        owner: Owner,
        content: Iterable[bytes],
        *,
        filename: str,
        purpose: str = BATCH_OUTPUT,
        expires_after_s: int | None = BATCH_EXPIRY_S,
        user_id: str | None = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        """A file Bastion itself produces for ``owner`` (a batch's output or error file, purpose
        ``batch_output``), served by the same routes as uploads. ``content`` is written as it is
        iterated, in a worker thread: pass a generator, not a 200 MB ``bytes``."""
        if purpose not in ALL_PURPOSES:
            raise ValueError(f"unknown file purpose {purpose!r}")
        upload = self.storage.begin()
        try:

            def write() -> None:
                for chunk in content:
                    upload.write(chunk)
                upload.finish()

            await asyncio.to_thread(write)
            return await self._keep(owner, user_id, key_id, upload, filename, purpose, expires_after_s, None)
        finally:
            await asyncio.to_thread(upload.discard)

    async def _keep(
        self,
        owner: Owner,
        user_id: str | None,
        key_id: str | None,
        upload: PendingUpload,
        filename: str | None,
        purpose: str,
        expires_after_s: int | None,
        line_count: int | None,
    ) -> dict[str, Any]:
        """Move a finished upload into place and add its row (no row: no bytes)."""
        now = self.clock()
        row = StoredFile(
            id="file-" + uuid.uuid4().hex,
            tenant_id=owner.tenant_id,
            owner_kind=owner.kind,
            owner_id=owner.id,
            user_id=user_id,
            key_id=key_id,
            filename=clean_filename(filename),
            purpose=purpose,
            bytes=upload.size,
            line_count=line_count,
            sha256=upload.sha256,
            status="processed",
            created_at=now,
            expires_at=now + timedelta(seconds=expires_after_s) if expires_after_s else None,
        )
        await asyncio.to_thread(upload.commit, self.storage.path(row.id))
        try:
            async with self.db.transaction() as session:
                session.add(row)
        except BaseException:  # cancelled too: no row, so no bytes (one unlink, done in place)
            self.storage.remove(row.id)
            raise
        log.info("file_stored", file_id=row.id, purpose=purpose, bytes=row.bytes, tenant_id=owner.tenant_id)
        return file_object(row)

    def _validate_batch(self, upload: PendingUpload) -> int:
        with upload.open() as lines:
            summary = validate_batch_input(lines, max_requests=self.settings.batch_max_requests)
        return summary.requests

    # -- reads -------------------------------------------------------------------------------------

    def _visible(self, owner: Owner) -> Any:
        now = self.clock()
        condition = and_(
            StoredFile.tenant_id == owner.tenant_id,
            or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > now),
        )
        if not owner.sees_tenant:
            condition = and_(condition, StoredFile.owner_kind == owner.kind, StoredFile.owner_id == owner.id)
        return condition

    async def _row(self, who: Principal | Owner, file_id: str) -> StoredFile:
        row = None
        if FILE_ID.fullmatch(file_id):
            async with self.db.session() as session:
                row = await session.scalar(
                    select(StoredFile).where(StoredFile.id == file_id, self._visible(_owner(who)))
                )
        if row is None:
            # Another tenant's or owner's file and an unknown id answer alike: existence is not revealed.
            raise NotFound(f"No such File object: {file_id[:80]}", param="file_id")
        return row

    async def retrieve(self, who: Principal | Owner, file_id: str) -> dict[str, Any]:
        return file_object(await self._row(who, file_id))

    async def open_content(self, who: Principal | Owner, file_id: str) -> tuple[dict[str, Any], BinaryIO]:
        """The file object and its bytes, open for reading (the caller closes them). A batch
        reads its input file so: ``validate_batch_input(handle, endpoint=...)`` in a thread."""
        row = await self._row(who, file_id)
        try:
            handle = await asyncio.to_thread(self.storage.open, row.id)
        except FileNotFoundError:
            log.error("file_bytes_missing", file_id=row.id, path=str(self.storage.path(row.id)))
            raise NotFound(f"The content of {row.id} is no longer stored.", param="file_id") from None
        return file_object(row), handle

    async def list_files(
        self,
        who: Principal | Owner,
        *,
        purpose: str | None = None,
        limit: int = MAX_LIST,
        after: str | None = None,
        order: str = "desc",
    ) -> dict[str, Any]:
        """OpenAI's list object: the caller's files by ``created_at`` (``order``), ``limit`` per
        page, starting after the file ``after`` (400 if the caller cannot see it)."""
        condition = self._visible(_owner(who))
        if purpose:
            condition = and_(condition, StoredFile.purpose == purpose)
        descending = order == "desc"
        if after:
            try:
                cursor = await self._row(who, after)
            except NotFound:
                raise InvalidRequest(f"Invalid request: no file {after[:80]!r} to list after.", param="after") from None
            at, last = cursor.created_at, cursor.id
            if descending:
                later = or_(StoredFile.created_at < at, and_(StoredFile.created_at == at, StoredFile.id < last))
            else:
                later = or_(StoredFile.created_at > at, and_(StoredFile.created_at == at, StoredFile.id > last))
            condition = and_(condition, later)
        ordering = (
            (StoredFile.created_at.desc(), StoredFile.id.desc())
            if descending
            else (StoredFile.created_at.asc(), StoredFile.id.asc())
        )
        async with self.db.session() as session:
            rows = [*await session.scalars(select(StoredFile).where(condition).order_by(*ordering).limit(limit + 1))]
        data = [file_object(row) for row in rows[:limit]]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(rows) > limit,
        }

    async def delete(self, who: Principal | Owner, file_id: str) -> dict[str, Any]:
        row = await self._row(who, file_id)
        async with self.db.transaction() as session:
            await session.execute(delete(StoredFile).where(StoredFile.id == row.id))
        await asyncio.to_thread(self.storage.remove, row.id)
        log.info("file_deleted", file_id=row.id, tenant_id=row.tenant_id)
        return {"id": row.id, "object": "file", "deleted": True}
