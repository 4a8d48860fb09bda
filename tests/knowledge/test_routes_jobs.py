"""Ingestion through the API as a background job (SQLite and PostgreSQL): uploads over the
synchronous limits (or ``background: true``) answer 202 with a job id; the job's route shows its
progress and each document's outcome or error; cancel stops it between groups; another tenant's
job, or a job of another kind, is a 404."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from bastion.jobs.model import NewJob
from bastion.store.db import Database
from tests.knowledge.conftest import FakeEmbedder
from tests.knowledge.pdf_fixture import encrypted, pdf_document
from tests.knowledge.routes_support import (
    COLLECTIONS,
    SYNC_BYTES,
    SYNC_DOCUMENTS,
    KnowledgeEnv,
    PaddedEmbedder,
    error_of,
    knowledge_gateway,
)
from tests.knowledge.routes_support import kenv as kenv
from tests.support.harness import wait_until

DOCS = f"{COLLECTIONS}/kb/documents"


def _text(i: int) -> str:
    return f"Document {i} describes warehouse {i} and its inventory of item{i}. " * 3


async def test_a_large_upload_runs_as_a_job_with_progress_and_errors_per_document(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb")
    documents = [{"id": f"d{i:02d}", "text": _text(i), "metadata": {"n": i}} for i in range(SYNC_DOCUMENTS + 6)]
    locked = encrypted(pdf_document([["Locked page."]]))
    documents.append({"id": "locked", "content_base64": base64.b64encode(locked).decode(), "format": "pdf"})
    queued = await kenv.post("ann", DOCS, documents)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    assert body["object"] == "knowledge.ingest_job" and body["state"] == "queued"
    assert body["documents"] == len(documents) and body["status_url"] == f"/v1/knowledge/jobs/{body['id']}"

    job = await kenv.finished_job("bob", body["id"])  # any writer of the tenant may follow it
    assert job["state"] == "succeeded" and job["kind"] == "knowledge_ingest"
    assert job["progress"] == {"done": len(documents), "total": len(documents)}
    assert "payload" not in job  # the documents' content is not echoed
    outcomes = {item["item"].split(":", 1)[1]: item for item in job["documents"]}
    assert len(outcomes) == len(documents)
    assert outcomes["d00"]["status"] == "succeeded" and outcomes["d00"]["result"]["status"] == "created"
    assert outcomes["locked"]["status"] == "failed"
    assert (
        outcomes["locked"]["error"]["code"] == "encrypted_pdf" and "encrypted" in outcomes["locked"]["error"]["message"]
    )
    assert job["result"]["documents"] == len(documents)
    error_of(await kenv.post("ann", f"/v1/knowledge/jobs/{body['id']}/cancel"), 409)  # it has finished

    listing = (await kenv.get("ann", DOCS, params={"limit": 100})).json()
    assert len(listing["data"]) == len(documents) - 1
    search = {"query": "warehouse 7 inventory item7", "collections": ["kb"], "mode": "bm25", "k": 1}
    assert (await kenv.post("svc", "/v1/knowledge/search", search)).json()["data"][0]["provenance"]["document"] == "d07"


async def test_a_large_file_and_background_true_become_jobs(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb")
    pages = [[f"Page {n} line {i} about the tidal survey of bay {n}." for i in range(14)] for n in range(1, 5)]
    pages[2].append("The marker word quokka appears on page three only.")
    pdf = pdf_document(pages)
    assert len(pdf) > SYNC_BYTES
    queued = await kenv.upload("ann", "kb", "tides.pdf", pdf)
    assert queued.status_code == 202, queued.text
    assert (await kenv.finished_job("ann", queued.json()["id"]))["state"] == "succeeded"
    hits = (await kenv.post("ann", "/v1/knowledge/search", {"query": "quokka", "collections": ["kb"], "k": 1,
                                                           "mode": "bm25"})).json()["data"]  # fmt: skip
    assert hits[0]["provenance"]["document"] == "tides.pdf" and hits[0]["provenance"]["page"] == 3

    small = await kenv.post("ann", DOCS, {"documents": [{"id": "s", "text": "Small."}], "background": True})
    assert small.status_code == 202
    assert (await kenv.finished_job("ann", small.json()["id"]))["state"] == "succeeded"
    form = await kenv.upload("ann", "kb", "tiny.txt", b"Tiny text.", background="true")
    assert form.status_code == 202
    assert (await kenv.finished_job("ann", form.json()["id"]))["state"] == "succeeded"
    assert {d["id"] for d in (await kenv.get("ann", DOCS)).json()["data"]} == {"tides.pdf", "s", "tiny.txt"}


class _Gate:
    """An embedder that lets its first call through and holds every later one until ``open``:
    the job finishes its first group of documents and then holds still in the second."""

    def __init__(self, inner: PaddedEmbedder) -> None:
        self.inner = inner
        self.calls = 0
        self.held = asyncio.Event()
        self.open = asyncio.Event()

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls > 1:
            self.held.set()
            await self.open.wait()
        return await self.inner(texts)


async def test_cancel_stops_a_running_job_and_keeps_what_finished(
    kenv: KnowledgeEnv, fake_embedder: FakeEmbedder
) -> None:
    await kenv.collection("ann", "kb")
    service = kenv.gateway.services.knowledge
    assert service is not None
    gate = _Gate(PaddedEmbedder(fake_embedder))
    service.embed = gate
    documents = [{"id": f"d{i:02d}", "text": _text(i)} for i in range(40)]
    job_id = (await kenv.post("ann", DOCS, documents)).json()["id"]
    await wait_until(gate.held.is_set, what="the job's second group")
    cancelling = await kenv.post("ann", f"/v1/knowledge/jobs/{job_id}/cancel")
    assert cancelling.status_code == 200 and cancelling.json()["cancel_requested"] is True
    job = await kenv.finished_job("ann", job_id)
    assert job["state"] == "cancelled"
    first_group = [item for item in job["documents"] if item["status"] == "succeeded"]
    assert 0 < len(first_group) < len(documents)
    stored = (await kenv.get("ann", DOCS, params={"limit": 100})).json()["data"]
    assert len(stored) == len(first_group)  # what finished stays, nothing of the held group
    counts = (await kenv.get("ann", f"{COLLECTIONS}/kb")).json()["index"]
    assert counts["chunks"] == counts["keyword"] == counts["vectors"] > 0
    again = await kenv.post("ann", f"/v1/knowledge/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


async def test_a_queued_job_cancels_at_once_and_other_jobs_are_not_found(
    database: Database, database_url: str, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    async with knowledge_gateway(database, database_url, tmp_path, fake_embedder, jobs={"inprocess_workers": 0}) as env:
        await env.collection("ann", "kb")
        job_id = (await env.post("ann", DOCS, {"documents": [{"id": "a", "text": "A."}], "background": True})).json()[
            "id"
        ]
        waiting = (await env.get("ann", f"/v1/knowledge/jobs/{job_id}")).json()
        assert waiting["state"] == "queued" and waiting["progress"] == {"done": 0, "total": 1}
        assert waiting["documents"] == []
        cancelled = (await env.post("bob", f"/v1/knowledge/jobs/{job_id}/cancel")).json()
        assert cancelled["state"] == "cancelled"
        assert (await env.get("ann", DOCS)).json()["data"] == []
        for who in ("svc", "viewer"):
            error_of(await env.get(who, f"/v1/knowledge/jobs/{job_id}"), 403)
        error_of(await env.get("carl", f"/v1/knowledge/jobs/{job_id}"), 404)
        other = await env.gateway.services.jobs.submit(NewJob("other.kind", payload={}, tenant_id=env.keys["acme_id"]))
        error_of(await env.get("admin", f"/v1/knowledge/jobs/{other.id}"), 404)
        error_of(await env.get("admin", "/v1/knowledge/jobs/" + "x" * 80), 404)
