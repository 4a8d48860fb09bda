"""The ``dataset_export`` job kind: runs one recorded export (``DatasetService.run_export``). An
export that fails validation (too few valid examples) ends the export as failed with its report;
the job itself succeeds, as retrying could not change the outcome."""

from __future__ import annotations

from typing import Any

from bastion.errors import BastionError
from bastion.jobs.context import JobContext
from bastion.review.datasets import DatasetService

JOB_KIND = "dataset_export"


class ExportJob:
    def __init__(self, datasets: DatasetService) -> None:
        self.datasets = datasets

    async def run(self, job: JobContext) -> dict[str, Any]:
        export_id = str((job.payload or {}).get("export_id"))
        try:
            export = await self.datasets.run_export(export_id)
        except BastionError as exc:
            return {"export_id": export_id, "status": "failed", "error": exc.message}
        return {
            "export_id": export_id,
            "status": export["status"],
            "file_id": export["file_id"],
            "lines": export["lines"],
        }
