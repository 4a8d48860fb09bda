"""Ingestion as a background job (kind ``knowledge_ingest``): progress, one item per document.

The payload names the tenant, the collection and the documents (text inline, bytes such as a
PDF's in base64). Each document's outcome is the job item ``<index>:<key>`` (its
``IngestResult``, or the error), written once; a re-run after a crash skips the documents already
stored, and re-ingesting one that was in flight costs nothing (its content hash is unchanged).
The handler stops between groups when the job is cancelled.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bastion.jobs.context import JobContext
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService
from bastion.knowledge.model import DocumentInput
from bastion.knowledge.service import KnowledgeService

JOB_KIND = "knowledge_ingest"
#: Documents ingested between cancellation checks and progress reports.
GROUP = 16


def document_json(document: DocumentInput) -> dict[str, Any]:
    """A document as the job payload holds it: text inline, bytes (a PDF) in base64."""
    if isinstance(document.content, str):
        content: dict[str, str] = {"content": document.content}
    else:
        content = {"content_base64": base64.b64encode(document.content).decode("ascii")}
    return {
        **content,
        "id": document.id,
        "uri": document.uri,
        "format": document.format,
        "title": document.title,
        "metadata": document.metadata,
    }


def document_from_json(item: dict[str, Any]) -> DocumentInput:
    content: bytes | str = base64.b64decode(item["content_base64"]) if "content_base64" in item else item["content"]
    return DocumentInput(
        content,
        id=item.get("id"),
        uri=item.get("uri"),
        format=item.get("format") or "text",
        title=item.get("title"),
        metadata=dict(item.get("metadata") or {}),
    )


def item_key(index: int, document: DocumentInput) -> str:
    return f"{index:06d}:{document.key or ''}"[:255]


async def submit_ingest(
    jobs: JobService,
    tenant_id: str,
    collection_id: str,
    documents: Sequence[DocumentInput],
    *,
    key_id: str | None = None,
    user_id: str | None = None,
) -> str:
    """Queue an ingestion job; its id. The collection must exist (``collection_id``)."""
    payload = {
        "tenant_id": tenant_id,
        "collection": collection_id,
        "documents": [document_json(document) for document in documents],
    }
    job = await jobs.submit(
        NewJob(
            JOB_KIND,
            payload=payload,
            tenant_id=tenant_id,
            key_id=key_id,
            user_id=user_id,
            progress_total=len(documents),
        )
    )
    return job.id


class IngestJob:
    def __init__(self, service: KnowledgeService) -> None:
        self.service = service

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        payload = ctx.payload
        documents = [document_from_json(item) for item in payload["documents"]]
        done = await ctx.done_items()
        todo = [(i, d) for i, d in enumerate(documents) if item_key(i, d) not in done]
        finished = len(documents) - len(todo)
        ctx.progress(finished, len(documents))
        for start in range(0, len(todo), GROUP):
            ctx.check_cancelled()
            part = todo[start : start + GROUP]
            results = await self.service.ingest(payload["tenant_id"], payload["collection"], [d for _i, d in part])
            for (index, document), result in zip(part, results, strict=True):
                key = item_key(index, document)
                if result.status == "error":
                    error = {"document": result.key, "message": result.error, "code": result.error_code}
                    await ctx.write_item(key, error=error)
                else:
                    await ctx.write_item(key, asdict(result))
            finished += len(part)
            ctx.progress(finished, len(documents))
        counts = await ctx.item_counts()
        return {"documents": len(documents), "items": counts}
