"""Datasets: named, versioned, immutable selections of approved examples, and their exports.

A version is built once (``build_version``) and never changes: its examples are frozen in
``dataset_examples`` with the manifest (counts, token statistics, the source interaction ids,
thresholds, agreement, who built it and when). An export renders a version in one format, streaming
it page by page to a temporary file while validating every line (``validate.py``), then stores it
with the files service (purpose ``fine-tune``) so it can be downloaded and uploaded to a provider.
Exporting the same version with the same options gives the same bytes; every export is kept in
the history with the file's sha256 and its validation report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from bastion.auth.principal import Permission, Principal, require
from bastion.config.work_settings import ReviewSettings
from bastion.errors import Conflict, InvalidRequest
from bastion.files.service import FileService
from bastion.review.audit import audit
from bastion.review.build import BuildSpec, ManifestStats, preference_example, sft_example
from bastion.review.export import NAME_CHARS, DatasetExports, PromptReader, SubmitJob, export_json
from bastion.review.model import PAIRWISE, SINGLE, actor_of
from bastion.review.models import (
    Dataset,
    DatasetExample,
    DatasetExport,
    DatasetVersion,
    Review,
    ReviewBatch,
    ReviewItem,
)
from bastion.review.outcomes import agreement_report
from bastion.store.db import Database
from bastion.store.models import Interaction

log = structlog.get_logger("bastion.review")

#: Examples read (and written) per page.
_PAGE = 1000


def check_name(name: str) -> str:
    if not name or len(name) > 128 or not set(name) <= NAME_CHARS:
        raise InvalidRequest("Invalid request: a dataset name is 1-128 letters, digits, '-', '_' or '.'.", param="name")
    return name


def version_json(
    dataset: Dataset, version: DatasetVersion, exports: list[DatasetExport] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": version.id,
        "object": "dataset_version",
        "dataset": dataset.name,
        "version": version.version,
        "kind": version.kind,
        "filter": version.filter,
        "thresholds": version.thresholds,
        "example_count": version.example_count,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
    }
    if exports is not None:
        out["manifest"] = {
            **version.manifest,
            "files": [
                {"export_id": e.id, "format": e.format, "file_id": e.file_id, "sha256": e.sha256, "bytes": e.bytes}
                for e in exports
                if e.status == "succeeded"
            ],
        }
    return out


class DatasetService(DatasetExports):
    def __init__(
        self,
        db: Database,
        files: FileService,
        settings: ReviewSettings,
        prompts: PromptReader,
        *,
        scratch_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.files = files
        self.settings = settings
        self.prompts = prompts
        self.scratch_dir = scratch_dir
        self.clock = clock
        #: Set by the composition root: submits an export job (None: exports run inline only).
        self.submit_job: SubmitJob | None = None

    # -- versions ----------------------------------------------------------------------------------

    async def build_version(self, principal: Principal, name: str, body: Any) -> dict[str, Any]:
        require(principal, Permission.MANAGE_DATASETS)
        name = check_name(name)
        spec = BuildSpec.parse(body, self.settings.min_quality)
        examples, reviews, considered = await self._select(principal, spec)
        if not examples:
            raise InvalidRequest(
                f"Invalid request: no reviewed item of purpose {spec.purpose!r} passes the thresholds "
                f"(quality >= {spec.min_quality}, {spec.min_reviews} review(s), majority approve).",
                code="no_approved_examples",
            )
        stats = ManifestStats()

        def count() -> None:  # token counts: off the event loop
            for example in examples:
                stats.add(example)

        await asyncio.to_thread(count)
        now = self.clock()
        for _attempt in range(3):
            try:
                async with self.db.transaction() as session:
                    dataset = await session.scalar(
                        select(Dataset).where(Dataset.tenant_id == principal.tenant_id, Dataset.name == name)
                    )
                    if dataset is None:
                        dataset = Dataset(
                            tenant_id=principal.tenant_id, name=name, created_by=actor_of(principal), created_at=now
                        )
                        session.add(dataset)
                        await session.flush()
                    number = (
                        await session.scalar(
                            select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id)
                        )
                        or 0
                    ) + 1
                    manifest = {
                        "dataset": name,
                        "version": number,
                        **stats.to_json(),
                        "items_considered": considered,
                        "filter": spec.filter_json(),
                        "thresholds": spec.thresholds_json(),
                        "agreement": agreement_report(
                            reviews, PAIRWISE if spec.kind == "preference" else SINGLE, spec.min_quality
                        ),
                        "source_interaction_ids": [e["interaction_id"] for e in examples],
                        "created_by": actor_of(principal),
                        "created_at": now.isoformat(),
                    }
                    version = DatasetVersion(
                        tenant_id=principal.tenant_id,
                        dataset_id=dataset.id,
                        version=number,
                        kind=spec.kind,
                        filter=spec.filter_json(),
                        thresholds=spec.thresholds_json(),
                        manifest=manifest,
                        example_count=len(examples),
                        created_by=actor_of(principal),
                        created_at=now,
                    )
                    session.add(version)
                    await session.flush()
                    for start in range(0, len(examples), _PAGE):
                        await session.execute(
                            insert(DatasetExample),
                            [
                                {
                                    "version_id": version.id,
                                    "position": start + i,
                                    "interaction_id": e["interaction_id"],
                                    "example": orjson.dumps(e).decode(),
                                }
                                for i, e in enumerate(examples[start : start + _PAGE])
                            ],
                        )
                    audit(
                        session, principal, "dataset.build", f"dataset:{name}", version=number, examples=len(examples)
                    )
                break
            except IntegrityError:  # two builds of one dataset at once: the next number
                continue
        else:
            raise Conflict("Another build of this dataset is running; try again.")
        log.info("dataset_version_built", dataset=name, version=number, examples=len(examples))
        return version_json(dataset, version, [])

    async def _select(self, principal: Principal, spec: BuildSpec) -> tuple[list[dict[str, Any]], list[Review], int]:
        kind = PAIRWISE if spec.kind == "preference" else SINGLE
        conditions = [
            ReviewItem.tenant_id == principal.tenant_id,
            ReviewItem.purpose == spec.purpose,
            ReviewBatch.kind == kind,
        ]
        if spec.batch_ids:
            conditions.append(ReviewItem.batch_id.in_(spec.batch_ids))
        async with self.db.session() as session:
            items = list(
                await session.scalars(
                    select(ReviewItem).join(ReviewBatch, ReviewBatch.id == ReviewItem.batch_id).where(*conditions)
                )
            )
            reviews: dict[str, list[Review]] = {}
            all_reviews: list[Review] = []
            ids = [item.id for item in items]
            for start in range(0, len(ids), _PAGE):
                for review in await session.scalars(
                    select(Review).where(Review.item_id.in_(ids[start : start + _PAGE]))
                ):
                    reviews.setdefault(review.item_id, []).append(review)
                    all_reviews.append(review)
            wanted = [
                i for item in items if item.id in reviews for i in (item.interaction_id, item.pair_interaction_id) if i
            ]
            rows: dict[str, dict[str, Any]] = {}
            columns = [
                Interaction.__table__.c[n]
                for n in (
                    "id",
                    "created_at",
                    "request_messages",
                    "response_text",
                    "extra",
                    "prompt_id",
                    "prompt_version",
                    "model",
                )
            ]
            for start in range(0, len(wanted), _PAGE):
                query = select(*columns).where(
                    Interaction.tenant_id == principal.tenant_id, Interaction.id.in_(wanted[start : start + _PAGE])
                )
                rows.update({row.id: dict(row._mapping) for row in await session.execute(query)})
        examples: list[tuple[Any, dict[str, Any]]] = []
        for item in items:
            item_reviews = reviews.get(item.id)
            first = rows.get(item.interaction_id)
            if not item_reviews or first is None:
                continue
            if kind == PAIRWISE:
                second = rows.get(item.pair_interaction_id or "")
                example = preference_example(item, first, second, item_reviews, spec) if second else None
            else:
                example = sft_example(first, item_reviews, spec)
            if example is not None:
                examples.append(((first["created_at"], first["id"]), example))
        examples.sort(key=lambda pair: pair[0])
        return [e for _key, e in examples], all_reviews, len(reviews)

    async def list_datasets(self, principal: Principal) -> list[dict[str, Any]]:
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Dataset, func.max(DatasetVersion.version), func.count(DatasetVersion.id))
                    .outerjoin(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
                    .where(Dataset.tenant_id == principal.tenant_id)
                    .group_by(Dataset.id)
                    .order_by(Dataset.name)
                )
            ).all()
        return [
            {
                "object": "dataset",
                "name": d.name,
                "latest_version": latest,
                "versions": count,
                "created_at": d.created_at.isoformat(),
            }
            for d, latest, count in rows
        ]

    async def get_dataset(self, principal: Principal, name: str) -> dict[str, Any]:
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            dataset = await self._dataset(session, principal, name)
            versions = list(
                await session.scalars(
                    select(DatasetVersion)
                    .where(DatasetVersion.dataset_id == dataset.id)
                    .order_by(DatasetVersion.version)
                )
            )
        return {
            "object": "dataset",
            "name": dataset.name,
            "created_by": dataset.created_by,
            "created_at": dataset.created_at.isoformat(),
            "versions": [version_json(dataset, v) for v in versions],
        }

    async def get_version(self, principal: Principal, name: str, number: int) -> dict[str, Any]:
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            dataset, version = await self._version(session, principal, name, number)
            exports = list(
                await session.scalars(
                    select(DatasetExport)
                    .where(DatasetExport.version_id == version.id)
                    .order_by(DatasetExport.created_at)
                )
            )
        return version_json(dataset, version, exports)

    async def list_exports(self, principal: Principal, name: str, number: int) -> list[dict[str, Any]]:
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            _dataset, version = await self._version(session, principal, name, number)
            exports = await session.scalars(
                select(DatasetExport)
                .where(DatasetExport.version_id == version.id)
                .order_by(DatasetExport.created_at.desc())
            )
            return [export_json(e) for e in exports]
