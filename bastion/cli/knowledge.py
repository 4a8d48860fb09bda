"""``bastion knowledge``: create collections, ingest files and search from the terminal (the same
service the HTTP API will use), and evaluate retrieval on BEIR-format files."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Annotated, TypeVar, cast

import numpy as np
import typer

from bastion.cli.access_common import ConfigOption, DataDirOption, fail, load
from bastion.config.settings import Settings
from bastion.errors import BastionError, NotFound
from bastion.knowledge.evaluation import (
    EvalReport,
    document_ranking,
    read_corpus,
    read_qrels,
    read_queries,
    summarise,
)
from bastion.knowledge.model import DocumentInput, Mode, SearchRequest
from bastion.knowledge.service import EmbedTexts, KnowledgeService
from bastion.local.embedder import DIMENSIONS, get_embedder
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import Tenant

T = TypeVar("T")

app = typer.Typer(help="Knowledge collections: create, ingest, search; evaluate retrieval.", no_args_is_help=True)

MODES = ("bm25", "dense", "hybrid")
#: Chunks retrieved per query; documents are ranked by their best chunk, 100 of them are scored.
CHUNKS_PER_QUERY = 300


class _TimedEmbed:
    """The embedder, timing each call (the query embedding's share of a dense search)."""

    def __init__(self, embed: EmbedTexts) -> None:
        self._embed = embed
        self.last_ms = 0.0

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        started = perf_counter()
        vectors = await self._embed(texts)
        self.last_ms = (perf_counter() - started) * 1000
        return vectors


async def _no_vectors(texts: list[str]) -> list[list[float]]:
    """BM25-only evaluations skip the model: every chunk gets the same placeholder unit vector."""
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    vector[0] = 1.0
    return [vector.tolist()] * len(texts)


def _local_embed(settings: Settings) -> EmbedTexts:
    embedder = get_embedder(settings.local)

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _tokens = await embedder.embed(texts)
        return vectors

    return embed


async def _evaluate(
    settings: Settings,
    url: str | None,
    corpus: Path,
    queries_path: Path,
    qrels_path: Path,
    modes: list[Mode],
    chunk_size: int | None,
    chunk_overlap: int | None,
    fetch_k: int,
) -> tuple[list[EvalReport], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="knowledge-eval-") as scratch:
        if url is None:
            url = f"sqlite+aiosqlite:///{Path(scratch) / 'eval.db'}"
        db = Database.from_settings(settings, _async_url(url))
        try:
            await upgrade(db.engine)
            return await _run(settings, db, corpus, queries_path, qrels_path, modes, chunk_size, chunk_overlap, fetch_k)
        finally:
            await db.dispose()


def _async_url(url: str) -> str:
    from bastion.store.db import database_url

    return database_url(Settings(database_url=url))


async def _run(
    settings: Settings,
    db: Database,
    corpus: Path,
    queries_path: Path,
    qrels_path: Path,
    modes: list[Mode],
    chunk_size: int | None,
    chunk_overlap: int | None,
    fetch_k: int,
) -> tuple[list[EvalReport], dict[str, float]]:
    needs_model = any(mode != "bm25" for mode in modes)
    timed = _TimedEmbed(_local_embed(settings) if needs_model else _no_vectors)
    service = KnowledgeService(db, settings.knowledge, timed, model="all-MiniLM-L6-v2", dimensions=DIMENSIONS)
    async with db.transaction() as session:
        tenant = Tenant(name=f"knowledge-eval-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
    try:
        await service.create_collection(tenant.id, "eval", chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        documents = list(read_corpus(corpus))
        started = perf_counter()

        def progress(done: int, total: int) -> None:
            if done % 1024 < 128 or done == total:
                typer.echo(f"indexed {done}/{total} documents", err=True)

        results = await service.ingest(tenant.id, "eval", documents, progress=progress, group=128)
        seconds = perf_counter() - started
        errors = [r for r in results if r.status == "error"]
        if errors:
            typer.echo(f"{len(errors)} documents failed, first: {errors[0].key}: {errors[0].error}", err=True)
        chunks = sum(r.chunks for r in results)
        ingestion = {
            "documents": float(len(documents)),
            "chunks": float(chunks),
            "seconds": seconds,
            "documents_per_s": len(documents) / seconds,
            "chunks_per_s": chunks / seconds,
        }
        queries = read_queries(queries_path)
        qrels = {qid: rel for qid, rel in read_qrels(qrels_path).items() if qid in queries}
        reports = []
        for mode in modes:
            request = SearchRequest("warm up", ["eval"], k=CHUNKS_PER_QUERY, mode=mode, fetch_k=fetch_k)
            await service.search(tenant.id, request)
            rankings: dict[str, list[str]] = {}
            latencies: list[float] = []
            embeds: list[float] = []
            for qid in qrels:
                request = SearchRequest(queries[qid], ["eval"], k=CHUNKS_PER_QUERY, mode=mode, fetch_k=fetch_k)
                timed.last_ms = 0.0
                began = perf_counter()
                hits = await service.search(tenant.id, request)
                latencies.append((perf_counter() - began) * 1000)
                embeds.append(timed.last_ms)
                rankings[qid] = [doc for doc, _score in document_ranking(hits, 100)]
            reports.append(summarise(mode, rankings, qrels, latencies, embeds if mode != "bm25" else []))
        return reports, ingestion
    finally:
        async with db.transaction() as session:
            row = await session.get(Tenant, tenant.id)
            if row is not None:
                await session.delete(row)


@app.command("eval")
def evaluate(
    corpus: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="BEIR corpus.jsonl")],
    queries: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="BEIR queries.jsonl")],
    qrels: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="BEIR qrels .tsv (with a header line)")],
    mode: Annotated[
        list[str] | None, typer.Option(help="bm25, dense or hybrid (repeat to evaluate several on one index)")
    ] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Database URL (default: a throw-away SQLite file)")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in word pieces")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in word pieces")] = None,
    fetch_k: Annotated[int, typer.Option(help="Candidates per retriever for hybrid fusion")] = CHUNKS_PER_QUERY,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Index a BEIR corpus into a fresh collection and print nDCG@10, recall@100 and query latency
    (p50/p95) for each mode; a document scores its best chunk. The collection (and its tenant) is
    deleted afterwards."""
    modes: list[Mode] = []
    for name in mode or ["hybrid"]:
        if name not in MODES:
            raise fail(f"unknown mode {name!r} (bm25, dense, hybrid)", 2)
        modes.append(cast(Mode, name))
    settings = load(config, data_dir)
    try:
        run = _evaluate(settings, database, corpus, queries, qrels, modes, chunk_size, chunk_overlap, fetch_k)
        reports, ingestion = asyncio.run(run)
    except BastionError as exc:
        raise fail(exc.message) from None
    if as_json:
        typer.echo(json.dumps({"ingestion": ingestion, "reports": [vars_of(r) for r in reports]}, indent=2))
        return
    typer.echo(
        f"indexed {int(ingestion['documents'])} documents, {int(ingestion['chunks'])} chunks in "
        f"{ingestion['seconds']:.1f} s ({ingestion['documents_per_s']:.1f} docs/s, "
        f"{ingestion['chunks_per_s']:.1f} chunks/s)"
    )
    for report in reports:
        for line in report.lines():
            typer.echo(line)


def vars_of(report: EvalReport) -> dict[str, object]:
    return {name: getattr(report, name) for name in report.__dataclass_fields__}


# -- collections from the terminal --------------------------------------------------------------

TenantOption = Annotated[str | None, typer.Option(help="Tenant name (default: auth.default_tenant).")]


def _service_call(settings: Settings, tenant: str | None, work: Callable[[KnowledgeService, str], Awaitable[T]]) -> T:
    """Run ``work`` with the knowledge service on the configured database, as ``tenant``."""
    from bastion.auth import manage
    from bastion.cli.access_common import database

    async def main() -> T:
        async with database(settings) as db:
            async with db.session() as session:
                row = await manage.tenant_by_name(session, tenant or settings.auth.default_tenant)
            if row is None:
                raise NotFound(f"no tenant named {tenant or settings.auth.default_tenant!r}")
            service = KnowledgeService(db, settings.knowledge, _local_embed(settings), dimensions=DIMENSIONS)
            return await work(service, row.id)

    try:
        return asyncio.run(main())
    except BastionError as exc:
        raise fail(exc.message) from None


@app.command("create")
def create(
    name: str,
    tenant: TenantOption = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in word pieces")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in word pieces")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a collection."""
    settings = load(config, data_dir)
    view = _service_call(
        settings,
        tenant,
        lambda service, tid: service.create_collection(tid, name, chunk_size=chunk_size, chunk_overlap=chunk_overlap),
    )
    typer.echo(f"{view.name} {view.id} chunk_size={view.chunk_size} chunk_overlap={view.chunk_overlap}")


@app.command("ingest")
def ingest(
    collection: str,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Text or Markdown files")],
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Ingest files (identified by their path; .md as Markdown, anything else as text)."""
    settings = load(config, data_dir)
    documents = [
        DocumentInput(
            path.read_bytes(),
            uri=str(path.resolve()),
            format="markdown" if path.suffix.lower() in (".md", ".markdown") else "text",
        )
        for path in files
    ]
    results = _service_call(settings, tenant, lambda service, tid: service.ingest(tid, collection, documents))
    for result in results:
        detail = f" ({result.error})" if result.error else f" chunks={result.chunks} embedded={result.embedded}"
        typer.echo(f"{result.status:<9} {result.key}{detail}")


@app.command("search")
def search(
    collection: str,
    query: str,
    tenant: TenantOption = None,
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid")] = "hybrid",
    k: Annotated[int, typer.Option(help="Hits")] = 5,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Search a collection and print the hits with their provenance (JSON lines)."""
    if mode not in MODES:
        raise fail(f"unknown mode {mode!r} (bm25, dense, hybrid)", 2)
    settings = load(config, data_dir)
    request = SearchRequest(query, [collection], k=k, mode=cast(Mode, mode))
    hits = _service_call(settings, tenant, lambda service, tid: service.search(tid, request))
    for hit in hits:
        typer.echo(json.dumps({"rank": hit.rank, "score": hit.score, "text": hit.text, **hit.provenance()}))
