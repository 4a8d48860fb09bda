"""Exports of dataset versions: request (inline or as a ``dataset_export`` job), render every
example in the chosen format with the chosen repairs, validate each line, stream the lines to a
temporary file, and store the result with the files service (purpose ``fine-tune``). Rejected
examples are counted per named error in the export's report, never dropped silently."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy import select, update

from bastion.auth.principal import Permission, Principal, require
from bastion.config.work_settings import ReviewSettings
from bastion.errors import BastionError, Conflict, InvalidRequest, NotFound, PermissionDenied
from bastion.files.service import FINE_TUNE, FileService, Owner, owner_of
from bastion.review.audit import audit
from bastion.review.formats import FORMAT_KIND, FORMATS, REPAIRS, SYSTEM_MODES, ExportOptions, format_example
from bastion.review.model import actor_of
from bastion.review.models import Dataset, DatasetExample, DatasetExport, DatasetVersion
from bastion.review.validate import OPENAI_MIN_EXAMPLES, ReportBuilder, line_errors
from bastion.store.db import Database

log = structlog.get_logger("bastion.review")

#: What a dataset name is made of.
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
#: Examples read (and written) per page.
_PAGE = 1000
#: Bytes buffered before a write to the temporary file.
_WRITE_BUFFER = 1 << 20


class PromptReader(Protocol):
    """Decrypts a vault prompt version's system text for an export (audited by the vault)."""

    def __call__(self, tenant_id: str, prompt_id: str, version: int, *, actor: str) -> Awaitable[str | None]: ...


#: Submits an export job: (principal, payload) -> job id.
SubmitJob = Callable[[Principal, dict[str, Any]], Awaitable[str]]


def parse_export(body: Any) -> ExportOptions:
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object.")
    unknown = sorted(set(body) - {"format", "system", "system_prompt", "repairs"})
    if unknown:
        raise InvalidRequest(f"Invalid request: unknown field {unknown[0]!r}.", param=unknown[0])
    fmt = body.get("format")
    if fmt not in FORMATS:
        raise InvalidRequest(f"Invalid request: format must be one of {', '.join(FORMATS)}.", param="format")
    system = body.get("system", "original")
    if system not in SYSTEM_MODES:
        raise InvalidRequest("Invalid request: system must be original, replace or none.", param="system")
    text = body.get("system_prompt")
    if (system == "replace") != (text is not None):
        raise InvalidRequest(
            "Invalid request: system_prompt is given exactly when system is replace.", param="system_prompt"
        )
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > 100_000 or "\x00" in text):
        raise InvalidRequest("Invalid request: system_prompt must be a non-blank string.", param="system_prompt")
    repairs = body.get("repairs") or []
    if not isinstance(repairs, list) or any(r not in REPAIRS[fmt] for r in repairs):
        raise InvalidRequest(
            f"Invalid request: repairs for {fmt} are any of {', '.join(REPAIRS[fmt])}.", param="repairs"
        )
    return ExportOptions(fmt, system, text, frozenset(repairs))


def export_json(export: DatasetExport) -> dict[str, Any]:
    return {
        "id": export.id,
        "object": "dataset_export",
        "version_id": export.version_id,
        "format": export.format,
        "options": export.options,
        "status": export.status,
        "job_id": export.job_id,
        "file_id": export.file_id,
        "sha256": export.sha256,
        "bytes": export.bytes,
        "lines": export.lines,
        "report": export.report,
        "error": export.error,
        "created_by": export.created_by,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
    }


class DatasetExports:
    """The export half of ``DatasetService`` (which sets these attributes)."""

    db: Database
    files: FileService
    settings: ReviewSettings
    prompts: PromptReader
    scratch_dir: Path
    clock: Callable[[], datetime]
    submit_job: SubmitJob | None

    async def _dataset(self, session: Any, principal: Principal, name: str) -> Dataset:
        dataset = None
        if 0 < len(name) <= 128 and set(name) <= NAME_CHARS:
            dataset = await session.scalar(
                select(Dataset).where(Dataset.tenant_id == principal.tenant_id, Dataset.name == name)
            )
        if dataset is None:
            raise NotFound(f"No dataset {name[:128]!r} in this tenant.")
        return dataset  # type: ignore[no-any-return]

    async def _version(
        self, session: Any, principal: Principal, name: str, number: int
    ) -> tuple[Dataset, DatasetVersion]:
        dataset = await self._dataset(session, principal, name)
        version = await session.scalar(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == number)
        )
        if version is None:
            raise NotFound(f"Dataset {name!r} has no version {number}.")
        return dataset, version

    # -- exports -----------------------------------------------------------------------------------

    async def request_export(
        self, principal: Principal, name: str, number: int, body: Any, *, background: bool | None = None
    ) -> dict[str, Any]:
        """Record an export and run it: as a job (``background``, or a version larger than
        ``review.inline_export_max``), else now. Returns the export (queued, or finished)."""
        require(principal, Permission.MANAGE_DATASETS)
        options = parse_export(body)
        async with self.db.transaction() as session:
            _dataset, version = await self._version(session, principal, name, number)
            if FORMAT_KIND[options.format] != version.kind:
                raise InvalidRequest(
                    f"Invalid request: format {options.format} needs a {FORMAT_KIND[options.format]} dataset; "
                    f"version {number} of {name!r} is {version.kind}.",
                    param="format",
                )
            vault_examples = int((version.manifest.get("counts") or {}).get("with_vault_prompt") or 0)
            if options.system == "original" and vault_examples and not principal.can(Permission.READ_PROMPT_PLAINTEXT):
                raise PermissionDenied(
                    f"Exporting the vault's system prompts needs the {Permission.READ_PROMPT_PLAINTEXT.value} "
                    "permission; export with system none or replace."
                )
            owner = owner_of(principal)
            export = DatasetExport(
                tenant_id=principal.tenant_id,
                version_id=version.id,
                format=options.format,
                options={**options.to_json(), "owner": {"kind": owner.kind, "id": owner.id}},
                status="queued",
                created_by=actor_of(principal),
                created_at=self.clock(),
            )
            session.add(export)
            await session.flush()
            audit(
                session, principal, "dataset.export", f"dataset:{name}", version=number, format=options.format,
                system=options.system, export_id=export.id,
            )  # fmt: skip
        if background is None:
            background = version.example_count > self.settings.inline_export_max
        if background and self.submit_job is not None:
            job_id = await self.submit_job(principal, {"export_id": export.id})
            async with self.db.transaction() as session:
                await session.execute(update(DatasetExport).where(DatasetExport.id == export.id).values(job_id=job_id))
            export.job_id = job_id
            return export_json(export)
        return await self.run_export(export.id)

    async def run_export(self, export_id: str) -> dict[str, Any]:
        """Render, validate, store: the export job's work (also run inline for small versions)."""
        async with self.db.session() as session:
            export = await session.get(DatasetExport, export_id)
            if export is None:
                raise NotFound(f"No dataset export {export_id!r}.")
            if export.status == "succeeded":
                return export_json(export)
            version = await session.get(DatasetVersion, export.version_id)
            dataset = await session.get(Dataset, version.dataset_id) if version is not None else None
        if version is None or dataset is None:
            raise NotFound("The export's dataset version is gone.")
        await self._set(export, status="running")
        try:
            stored = await self._render(export, dataset, version)
        except BastionError as exc:
            await self._set(export, status="failed", error=exc.message, finished_at=self.clock())
            raise
        await self._set(export, status="succeeded", finished_at=self.clock(), **stored)
        log.info("dataset_exported", export_id=export.id, format=export.format, lines=stored["lines"])
        return export_json(export)

    async def _set(self, export: DatasetExport, **values: Any) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(DatasetExport).where(DatasetExport.id == export.id).values(**values))
        for key, value in values.items():
            setattr(export, key, value)

    async def _render(self, export: DatasetExport, dataset: Dataset, version: DatasetVersion) -> dict[str, Any]:
        raw = dict(export.options)
        owner_info = raw.pop("owner")
        options = ExportOptions(export.format, raw["system"], raw.get("system_prompt"), frozenset(raw["repairs"]))
        report = ReportBuilder(export.format, self.settings.max_example_tokens)
        systems: dict[tuple[str, int], str | None] = {}
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="export-", suffix=".jsonl", dir=self.scratch_dir)
        path = Path(name)
        digest = hashlib.sha256()
        try:
            with os.fdopen(handle, "wb") as out:
                position = -1
                while True:
                    async with self.db.session() as session:
                        page = (
                            await session.execute(
                                select(DatasetExample.position, DatasetExample.interaction_id, DatasetExample.example)
                                .where(DatasetExample.version_id == version.id, DatasetExample.position > position)
                                .order_by(DatasetExample.position)
                                .limit(_PAGE)
                            )
                        ).all()
                    if not page:
                        break
                    position = page[-1].position
                    examples = [(row.interaction_id, orjson.loads(row.example)) for row in page]
                    for _interaction, example in examples:  # the vault's texts first (async, cached)
                        await self._system_for(export, example, options, systems)
                    # Rendering, validation and token counting cost about half a millisecond an
                    # example: off the event loop, which may be serving requests meanwhile.
                    chunk = await asyncio.to_thread(_render_page, examples, options, systems, report)
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            result = report.report()
            minimum = OPENAI_MIN_EXAMPLES if export.format.startswith("openai") else 1
            if report.written < minimum:
                await self._set(export, report=result)
                raise InvalidRequest(
                    f"Invalid request: {report.written} valid example(s) after validation; the {export.format} "
                    f"format needs at least {minimum} (see the export's report).",
                    code="too_few_examples",
                )
            owner = Owner(export.tenant_id, owner_info["kind"], owner_info["id"], False)
            filename = f"{dataset.name}-v{version.version}-{export.format}.jsonl"
            stored = await self.files.add_file(
                owner, _read_chunks(path), filename=filename, purpose=FINE_TUNE, expires_after_s=None
            )
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        return {
            "file_id": stored["id"],
            "sha256": digest.hexdigest(),
            "bytes": stored["bytes"],
            "lines": report.written,
            "report": result,
        }

    async def _system_for(
        self,
        export: DatasetExport,
        example: dict[str, Any],
        options: ExportOptions,
        cache: dict[tuple[str, int], str | None],
    ) -> str | None:
        prompt_id, number = example.get("prompt_id"), example.get("prompt_version")
        if options.system != "original" or not prompt_id or not number:
            return None
        key = (str(prompt_id), int(number))
        if key not in cache:
            try:
                cache[key] = await self.prompts(export.tenant_id, key[0], key[1], actor=export.created_by)
            except NotFound:
                cache[key] = None
        return cache[key]

    async def get_export(self, principal: Principal, export_id: str) -> dict[str, Any]:
        """One export of the caller's tenant, with its report."""
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            row = await session.scalar(
                select(DatasetExport).where(
                    DatasetExport.id == export_id[:32], DatasetExport.tenant_id == principal.tenant_id
                )
            )
        if row is None:
            raise NotFound(f"No dataset export {export_id[:64]!r} in this tenant.")
        return export_json(row)

    async def download(self, principal: Principal, export_id: str) -> tuple[dict[str, Any], Any]:
        """The export's file (metadata and an open binary handle)."""
        export = await self.get_export(principal, export_id)
        if export["file_id"] is None:
            raise Conflict(f"The export is {export['status']}; it has no file.")
        owner = Owner(principal.tenant_id, "tenant", "-", True)
        return await self.files.open_content(owner, export["file_id"])


def _render_page(
    examples: list[tuple[str, dict[str, Any]]],
    options: ExportOptions,
    systems: dict[tuple[str, int], str | None],
    report: ReportBuilder,
) -> bytes:
    """One page of examples as JSONL (rejected ones counted in ``report``, not written)."""
    chunk = bytearray()
    for interaction_id, example in examples:
        report.examples += 1
        system = None
        if options.system == "original" and example.get("prompt_id") and example.get("prompt_version"):
            system = systems.get((str(example["prompt_id"]), int(example["prompt_version"])))
        formatted = format_example(example, options, system)
        report.notes.update(formatted.notes)
        errors = formatted.errors or line_errors(options.format, formatted.line)
        if errors:
            report.reject(interaction_id, errors)
            continue
        report.repairs.update(formatted.repairs)
        assert formatted.line is not None
        report.accept(formatted.line)
        chunk += orjson.dumps(formatted.line)
        chunk += b"\n"
    return bytes(chunk)


def _read_chunks(path: Path, size: int = _WRITE_BUFFER) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk
