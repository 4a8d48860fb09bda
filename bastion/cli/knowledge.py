"""``bastion knowledge``: everything the HTTP API does (``/v1/knowledge``), from the terminal and
with the same service and the same JSON shapes (collections: create, list, show, delete; documents:
ingest files of every format, list, show, delete, delete by filter; search), and the evaluation
of retrieval on BEIR-format files."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Annotated, Any, TypeVar, cast

import numpy as np
import typer

from bastion.cli.access_common import ConfigOption, DataDirOption, fail, load
from bastion.config.settings import Settings
from bastion.errors import BastionError, NotFound, PayloadTooLarge
from bastion.knowledge.evaluation import (
    EvalReport,
    document_ranking,
    read_corpus,
    read_qrels,
    read_queries,
    summarise,
)
from bastion.knowledge.extract import detect_format
from bastion.knowledge.model import DocumentInput, Mode, SearchRequest
from bastion.knowledge.service import EmbedTexts, KnowledgeService
from bastion.knowledge.wire import (
    collection_json,
    document_json,
    hit_json,
    metadata_of,
    parse_collection,
    parse_filter,
    parse_search,
    result_json,
)
from bastion.local.embedder import DIMENSIONS, get_embedder
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import Tenant

T = TypeVar("T")
V = TypeVar("V")

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


@dataclass(frozen=True, slots=True)
class _Evaluation:
    """What ``bastion knowledge eval`` was asked: the BEIR files, the modes and the index's shape."""

    corpus: Path
    queries: Path
    qrels: Path
    modes: list[Mode]
    chunk_size: int | None
    chunk_overlap: int | None
    fetch_k: int


#: Each mode's report, and the ingestion's figures.
_Outcome = tuple[list[EvalReport], dict[str, float]]


async def _evaluate(settings: Settings, url: str | None, spec: _Evaluation) -> _Outcome:
    with tempfile.TemporaryDirectory(prefix="knowledge-eval-") as scratch:
        if url is None:
            url = f"sqlite+aiosqlite:///{Path(scratch) / 'eval.db'}"
        db = Database.from_settings(settings, _async_url(url))
        try:
            await upgrade(db.engine)
            return await _run(settings, db, spec)
        finally:
            await db.dispose()


def _async_url(url: str) -> str:
    from bastion.store.db import database_url

    return database_url(Settings(database_url=url))


async def _run(settings: Settings, db: Database, spec: _Evaluation) -> _Outcome:
    needs_model = any(mode != "bm25" for mode in spec.modes)
    timed = _TimedEmbed(_local_embed(settings) if needs_model else _no_vectors)
    service = KnowledgeService(db, settings.knowledge, timed, model="all-MiniLM-L6-v2", dimensions=DIMENSIONS)
    async with db.transaction() as session:
        tenant = Tenant(name=f"knowledge-eval-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
    try:
        await service.create_collection(tenant.id, "eval", chunk_size=spec.chunk_size, chunk_overlap=spec.chunk_overlap)
        documents = list(read_corpus(spec.corpus))
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
        queries = read_queries(spec.queries)
        qrels = {qid: rel for qid, rel in read_qrels(spec.qrels).items() if qid in queries}
        reports = []
        for mode in spec.modes:
            request = SearchRequest("warm up", ["eval"], k=CHUNKS_PER_QUERY, mode=mode, fetch_k=spec.fetch_k)
            await service.search(tenant.id, request)
            rankings: dict[str, list[str]] = {}
            latencies: list[float] = []
            embeds: list[float] = []
            for qid in qrels:
                request = SearchRequest(queries[qid], ["eval"], k=CHUNKS_PER_QUERY, mode=mode, fetch_k=spec.fetch_k)
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
        spec = _Evaluation(corpus, queries, qrels, modes, chunk_size, chunk_overlap, fetch_k)
        run = _evaluate(settings, database, spec)
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


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the HTTP API's shapes)")]


def _json_argument(raw: str | None, what: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise fail(f"{what} is not valid JSON", 2) from None


def _print(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def _listing(items: Sequence[V], as_json: bool, to_json: Callable[[V], Any], line: Callable[[V], str]) -> None:
    """Items as a JSON array (the API's shapes), or one line each."""
    if as_json:
        _print([to_json(item) for item in items])
        return
    for item in items:
        typer.echo(line(item))


@app.command("create")
def create(
    name: str,
    tenant: TenantOption = None,
    description: Annotated[str | None, typer.Option(help="What the collection holds")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in word pieces")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in word pieces")] = None,
    metadata: Annotated[str | None, typer.Option(help="The collection's metadata, a JSON object")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a collection (POST /v1/knowledge/collections)."""
    settings = load(config, data_dir)
    body = {
        "name": name,
        "description": description,
        "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap,
        "metadata": _json_argument(metadata, "--metadata"),
    }
    try:
        spec = parse_collection({key: value for key, value in body.items() if value is not None})
    except BastionError as exc:
        raise fail(exc.message, 2) from None
    view = _service_call(
        settings,
        tenant,
        lambda service, tid: service.create_collection(
            tid,
            spec.name,
            description=spec.description,
            chunk_size=spec.chunk_size,
            chunk_overlap=spec.chunk_overlap,
            metadata=spec.metadata,
        ),
    )
    if as_json:
        _print(collection_json(view))
        return
    typer.echo(f"{view.name} {view.id} chunk_size={view.chunk_size} chunk_overlap={view.chunk_overlap}")


@app.command("list")
def list_collections(
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The tenant's collections (GET /v1/knowledge/collections)."""
    views = _service_call(load(config, data_dir), tenant, lambda service, tid: service.list_collections(tid))
    _listing(
        views,
        as_json,
        collection_json,
        lambda view: f"{view.name:<24} {view.id} documents={view.documents} chunks={view.chunks}",
    )


@app.command("show")
def show(
    collection: str, tenant: TenantOption = None, config: ConfigOption = None, data_dir: DataDirOption = None
) -> None:
    """One collection with its index counts, as JSON (GET /v1/knowledge/collections/{collection})."""

    async def work(service: KnowledgeService, tid: str) -> dict[str, Any]:
        view = await service.get_collection(tid, collection)
        return collection_json(view, await service.index_counts(tid, view.id))

    _print(_service_call(load(config, data_dir), tenant, work))


@app.command("delete")
def delete(
    collection: str,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking")] = False,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a collection and all its documents (DELETE /v1/knowledge/collections/{collection})."""
    if not yes:
        typer.confirm(f"Delete collection {collection!r} and all its documents?", abort=True)
    _service_call(load(config, data_dir), tenant, lambda service, tid: service.delete_collection(tid, collection))
    typer.echo(f"deleted {collection}")


@app.command("ingest")
def ingest(
    collection: str,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Text, Markdown, HTML or PDF files")],
    tenant: TenantOption = None,
    format_name: Annotated[
        str | None, typer.Option("--format", help="text, markdown, html or pdf (default: from each file's name)")
    ] = None,
    metadata: Annotated[str | None, typer.Option(help="Metadata of every file, a JSON object")] = None,
    document_id: Annotated[str | None, typer.Option("--id", help="The document's id (one file only)")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Ingest files (POST .../documents), identified by their absolute path unless --id. Exits 1
    if any file was refused (the others are ingested)."""
    if document_id is not None and len(files) != 1:
        raise fail("--id names one document: give one file", 2)
    settings = load(config, data_dir)
    try:
        meta = metadata_of(_json_argument(metadata, "--metadata"), "--metadata")
        documents = []
        for path in files:
            content = path.read_bytes()
            if len(content) > settings.knowledge.max_document_bytes:
                raise PayloadTooLarge(f"{path} is larger than the {settings.knowledge.max_document_bytes:,}-byte limit")
            fmt = detect_format(format_name, path.name, head=content[:8])
            documents.append(DocumentInput(content, id=document_id, uri=str(path.resolve()), format=fmt, metadata=meta))
    except BastionError as exc:
        raise fail(exc.message, 2) from None
    results = _service_call(settings, tenant, lambda service, tid: service.ingest(tid, collection, documents))
    if as_json:
        _print([result_json(result) for result in results])
    else:
        for result in results:
            detail = f" ({result.error})" if result.error else f" chunks={result.chunks} embedded={result.embedded}"
            typer.echo(f"{result.status:<9} {result.key}{detail}")
    if any(result.status == "error" for result in results):
        raise typer.Exit(1)


@app.command("documents")
def documents(
    collection: str,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Documents per page")] = 100,
    after: Annotated[str | None, typer.Option(help="Start after this key (the last one printed)")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A collection's documents, by key (GET .../documents)."""
    views = _service_call(
        load(config, data_dir),
        tenant,
        lambda service, tid: service.list_documents(tid, collection, limit=limit, after=after),
    )
    _listing(
        views,
        as_json,
        document_json,
        lambda view: f"{view.external_id}  format={view.format} version={view.version} chunks={view.chunks}",
    )


@app.command("document")
def document(
    collection: str,
    key: str,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One document (by key or document id), as JSON (GET .../documents/{document})."""
    view = _service_call(
        load(config, data_dir), tenant, lambda service, tid: service.get_document(tid, collection, key)
    )
    _print(document_json(view))


@app.command("delete-document")
def delete_document(
    collection: str,
    key: str,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete one document (DELETE .../documents/{document})."""

    async def work(service: KnowledgeService, tid: str) -> str:
        view = await service.get_document(tid, collection, key)
        await service.delete_document(tid, collection, view.id)
        return view.external_id

    typer.echo(f"deleted {_service_call(load(config, data_dir), tenant, work)}")


@app.command("delete-where")
def delete_where(
    collection: str,
    filter_json: Annotated[str, typer.Option("--filter", help='Metadata filter, e.g. \'{"source": "wiki"}\'')],
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete every document whose metadata matches the filter; prints the count (POST .../documents/delete)."""
    try:
        filters = parse_filter({"filter": _json_argument(filter_json, "--filter")})
    except BastionError as exc:
        raise fail(exc.message, 2) from None
    count = _service_call(
        load(config, data_dir), tenant, lambda service, tid: service.delete_documents(tid, collection, filters)
    )
    typer.echo(f"deleted {count} documents")


@app.command("search")
def search(
    collection: str,
    query: str,
    tenant: TenantOption = None,
    also: Annotated[list[str] | None, typer.Option("--also", help="Another collection to search (repeatable)")] = None,
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid")] = "hybrid",
    k: Annotated[int, typer.Option(help="Hits")] = 5,
    filters: Annotated[str | None, typer.Option(help="Metadata filter, a JSON object")] = None,
    fetch_k: Annotated[int | None, typer.Option(help="Candidates per retriever")] = None,
    fusion: Annotated[str, typer.Option(help="rrf or linear (hybrid)")] = "rrf",
    rrf_k: Annotated[int | None, typer.Option(help="Reciprocal-rank fusion's k")] = None,
    weights: Annotated[str | None, typer.Option(help="bm25,dense fusion weights, e.g. 1,0.5")] = None,
    mmr_lambda: Annotated[float | None, typer.Option(help="MMR re-ranking's lambda (0..1)")] = None,
    threshold: Annotated[float | None, typer.Option(help="Least dense cosine (-1..1) of a hit")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Search collections and print the hits with their provenance, one JSON object a line (POST
    /v1/knowledge/search)."""
    settings = load(config, data_dir)
    body: dict[str, Any] = {
        "query": query,
        "collections": [collection, *(also or [])],
        "k": k,
        "mode": mode,
        "fusion": fusion,
    }
    options = {
        "filters": _json_argument(filters, "--filters"),
        "fetch_k": fetch_k,
        "rrf_k": rrf_k,
        "mmr_lambda": mmr_lambda,
        "threshold": threshold,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    if weights is not None:
        try:
            body["weights"] = [float(part) for part in weights.split(",")]
        except ValueError:
            raise fail("--weights is two numbers: bm25,dense", 2) from None
    try:
        request = parse_search(body, settings.knowledge.fetch_k, settings.knowledge.rrf_k)
    except BastionError as exc:
        raise fail(exc.message, 2) from None
    hits = _service_call(settings, tenant, lambda service, tid: service.search(tid, request))
    for hit in hits:
        typer.echo(json.dumps(hit_json(hit), ensure_ascii=False))
