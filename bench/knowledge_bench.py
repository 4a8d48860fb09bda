"""Knowledge retrieval latency and ingestion throughput on a BEIR corpus (SciFact: 5,183 documents).

One core (the process is pinned to CPU 0, torch to one thread), warm (each mode runs every query
once before it is timed). Prints, for k = 10:

- bm25: p50/p95 of ``search(mode="bm25")`` (FTS5 on SQLite, the postings BM25 on PostgreSQL);
- dense: p50/p95 of ``search(mode="dense")`` with the query vector precomputed (the embedding is
  excluded; its own cost is reported separately);
- hybrid+mmr: RRF of both (fetch_k 50) and MMR (lambda 0.5), the embedding excluded;
- the query embedding's p50/p95 with the local MiniLM;
- on PostgreSQL, bm25 once as the ingestion left it (autovacuum may or may not have been by),
  then everything after ``VACUUM ANALYZE`` (the state autovacuum brings a freshly ingested
  collection to within minutes; ``--no-vacuum``: no VACUUM, everything as ingested);
- for each search mode also the CPU time per query (this process plus its PostgreSQL backends,
  from /proc): on a machine shared with other work, wall-clock time includes waiting for a core;
  the CPU time is what the query costs on one;
- ingestion: documents and chunks per second (with the model, or ``--vectors hashed`` to index
  with cheap deterministic vectors when only search latency is wanted; latency does not depend on
  the vectors' values).

    python bench/knowledge_bench.py --corpus corpus.jsonl --queries queries.jsonl [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from time import perf_counter

import numpy as np
from sqlalchemy import text

from bastion.config.settings import LocalModelSettings, Settings
from bastion.config.work_settings import KnowledgeSettings
from bastion.knowledge.evaluation import percentile, read_corpus, read_queries
from bastion.knowledge.model import Mode, SearchRequest
from bastion.knowledge.service import KnowledgeService
from bastion.local.embedder import DIMENSIONS, get_embedder
from bastion.store.db import Database, database_url
from bastion.store.migrate import upgrade
from bastion.store.models import Tenant

#: SciFact as the project keeps it: beside the repository, in shared/data (training queries only).
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval" / "scifact"


def hashed_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(DIMENSIONS).astype(np.float32)
    unit: list[float] = (vector / np.linalg.norm(vector)).tolist()
    return unit


async def server_pids(db: Database) -> list[int]:
    """The PostgreSQL backends serving this benchmark's connections (none on SQLite)."""
    if db.engine.dialect.name != "postgresql":
        return []
    async with db.session() as session:
        rows = await session.execute(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND backend_type = 'client backend'"
            )
        )
        return [int(pid) for pid in rows.scalars()]


def cpu_ns(pids: list[int]) -> int:
    """CPU time used so far by this process and the given ones (Linux): on a machine shared with
    other work, the cost of a query on one core, which wall-clock time is not."""
    total = time.process_time_ns()
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total


async def vacuum(db: Database) -> None:
    """What autovacuum does within a minute or two of a bulk ingestion (PostgreSQL 13+ vacuums
    insert-only tables too): statistics, and the visibility map that lets BM25 read tf and length
    from the postings' index alone."""
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for name in ("knowledge_postings", "knowledge_chunks", "knowledge_documents"):
            await autocommit.exec_driver_sql(f"VACUUM ANALYZE {name}")
    print("postgresql: VACUUM ANALYZE (as autovacuum would after an ingestion); the rest is measured after it")


async def report(
    db: Database,
    service: KnowledgeService,
    tenant_id: str,
    queries: list[str],
    name: str,
    mode: Mode,
    lam: float | None,
) -> None:
    def request(query: str) -> SearchRequest:
        return SearchRequest(query, ["bench"], k=10, mode=mode, fetch_k=50, mmr_lambda=lam)

    for query in queries:  # warm: caches, the dense matrix, the database's pages
        await service.search(tenant_id, request(query))
    servers = await server_pids(db)
    times: list[float] = []
    cpu: list[float] = []
    for query in queries:
        began, cpu_began = perf_counter(), cpu_ns(servers)
        await service.search(tenant_id, request(query))
        times.append((perf_counter() - began) * 1000)
        cpu.append((cpu_ns(servers) - cpu_began) / 1e6)
    print(
        f"{name:<11} k=10: p50 {percentile(times, 0.5):6.1f} ms  p95 {percentile(times, 0.95):6.1f} ms  "
        f"mean {statistics.fmean(times):6.1f} ms  ({len(times)} queries, embedding excluded)"
    )
    print(
        f"{'':<11}   cpu: p50 {percentile(cpu, 0.5):6.1f} ms  p95 {percentile(cpu, 0.95):6.1f} ms  "
        f"(this process{' + its PostgreSQL backends' if servers else ''})"
    )


async def main(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {0})
    try:  # one core: one BLAS thread (two would take turns on it, spin-waiting)
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(1)
    except ImportError:
        print("threadpoolctl is not installed: set OPENBLAS_NUM_THREADS=1 for a one-core figure")
    embedder = get_embedder(LocalModelSettings(threads=2))  # half the budget: one torch thread
    query_vectors: dict[str, list[float]] = {}

    async def model_embed(texts: list[str]) -> list[list[float]]:
        vectors, _tokens = await embedder.embed(texts)
        return vectors

    async def ingest_embed(texts: list[str]) -> list[list[float]]:
        if args.vectors == "hashed":
            return [hashed_vector(text) for text in texts]
        return await model_embed(texts)

    async def search_embed(texts: list[str]) -> list[list[float]]:
        return [query_vectors[text] for text in texts]  # precomputed: the embedding is not timed

    with tempfile.TemporaryDirectory(prefix="knowledge-bench-") as scratch:
        url = database_url(Settings(database_url=args.database or f"sqlite:///{scratch}/bench.db"))
        db = Database.from_settings(Settings(), url)
        await upgrade(db.engine)
        async with db.transaction() as session:
            tenant = Tenant(name=f"knowledge-bench-{uuid.uuid4().hex[:8]}")
            session.add(tenant)
        try:
            service = KnowledgeService(db, KnowledgeSettings(), ingest_embed)
            await service.create_collection(tenant.id, "bench")
            documents = list(read_corpus(args.corpus))[: args.limit_docs or None]
            started = perf_counter()
            results = await service.ingest(tenant.id, "bench", documents, group=128)
            seconds = perf_counter() - started
            chunks = sum(result.chunks for result in results)
            print(f"backend: {db.engine.dialect.name}  documents: {len(documents)}  chunks: {chunks}")
            print(
                f"ingestion ({args.vectors} vectors): {seconds:.1f} s, {len(documents) / seconds:.1f} docs/s, "
                f"{chunks / seconds:.1f} chunks/s"
            )
            queries = list(read_queries(args.queries).values())[: args.queries_n]
            embed_ms: list[float] = []
            embed_cpu: list[float] = []
            await model_embed(["warm up"])
            for query in queries:
                began, cpu_began = perf_counter(), cpu_ns([])
                query_vectors[query] = (await model_embed([query]))[0]
                embed_ms.append((perf_counter() - began) * 1000)
                embed_cpu.append((cpu_ns([]) - cpu_began) / 1e6)
            print(
                f"query embedding (MiniLM, 1 thread): p50 {percentile(embed_ms, 0.5):.1f} ms  "
                f"p95 {percentile(embed_ms, 0.95):.1f} ms  (cpu p50 {percentile(embed_cpu, 0.5):.1f} ms  "
                f"p95 {percentile(embed_cpu, 0.95):.1f} ms)"
            )
            service.embed = search_embed
            cases: list[tuple[str, Mode, float | None]] = [
                ("bm25", "bm25", None),
                ("dense", "dense", None),
                ("hybrid", "hybrid", None),
                ("hybrid+mmr", "hybrid", 0.5),
            ]
            if args.vacuum and db.engine.dialect.name == "postgresql":
                await report(db, service, tenant.id, queries, "bm25 (before VACUUM)", "bm25", None)
                await vacuum(db)
            for name, mode, lam in cases:
                await report(db, service, tenant.id, queries, name, mode, lam)
        finally:
            async with db.transaction() as session:
                row = await session.get(Tenant, tenant.id)
                if row is not None:
                    await session.delete(row)
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    parser.add_argument("--queries", type=Path, default=SCIFACT / "queries-train.jsonl")
    parser.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--vectors", choices=["model", "hashed"], default="model")
    parser.add_argument("--limit-docs", type=int, default=0)
    parser.add_argument("--vacuum", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--queries-n", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
