"""Retrieval evaluation on BEIR-format files: nDCG@10, recall@100 and query latency.

A fresh collection is indexed from ``corpus.jsonl`` (``{"_id", "title", "text"}``: the title is the
document's first paragraph), each query of ``queries.jsonl`` that has judgements in ``qrels.tsv``
is searched, and a document's score is its best chunk's. The metrics are the standard ones (as
pytrec_eval computes them for BEIR): graded nDCG with log2 discounts, recall over the relevant set.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bastion.knowledge.model import DocumentInput, Hit


def read_corpus(path: Path) -> Iterator[DocumentInput]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                item = json.loads(line)
                title = (item.get("title") or "").strip()
                text = (item.get("text") or "").strip()
                content = f"{title}\n\n{text}" if title else text
                yield DocumentInput(content, id=str(item["_id"]), title=title or None)


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                item = json.loads(line)
                queries[str(item["_id"])] = item["text"]
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {document id: relevance}; the first line is a header."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        next(lines, None)
        for line in lines:
            parts = line.split()
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def document_ranking(hits: list[Hit], limit: int = 100) -> list[tuple[str, float]]:
    """Documents by their best chunk's score (hits are best first), at most ``limit``."""
    seen: dict[str, float] = {}
    for hit in hits:
        if hit.document_key not in seen:
            seen[hit.document_key] = hit.score
            if len(seen) == limit:
                break
    return list(seen.items())


def ndcg_at(ranking: list[str], relevant: dict[str, int], k: int = 10) -> float:
    gains = [relevant.get(doc, 0) for doc in ranking[:k]]
    dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains) if gain > 0)
    ideal = sorted((gain for gain in relevant.values() if gain > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: list[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranking[:k])) / len(wanted)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class EvalReport:
    mode: str
    queries: int
    ndcg10: float
    recall100: float
    #: Search latency, milliseconds, with the query embedding.
    p50_ms: float
    p95_ms: float
    #: The query embedding's share (dense and hybrid), milliseconds.
    embed_p50_ms: float
    embed_p95_ms: float

    def lines(self) -> list[str]:
        out = [
            f"mode: {self.mode}  queries: {self.queries}",
            f"nDCG@10: {self.ndcg10:.4f}",
            f"recall@100: {self.recall100:.4f}",
            f"latency p50: {self.p50_ms:.1f} ms  p95: {self.p95_ms:.1f} ms",
        ]
        if self.embed_p95_ms > 0:
            out.append(f"  of which query embedding p50: {self.embed_p50_ms:.1f} ms  p95: {self.embed_p95_ms:.1f} ms")
        return out


def summarise(
    mode: str,
    rankings: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    latencies_ms: list[float],
    embed_ms: list[float],
) -> EvalReport:
    ndcg = [ndcg_at(rankings.get(qid, []), rel) for qid, rel in qrels.items()]
    recall = [recall_at(rankings.get(qid, []), rel) for qid, rel in qrels.items()]
    return EvalReport(
        mode=mode,
        queries=len(ndcg),
        ndcg10=statistics.fmean(ndcg) if ndcg else 0.0,
        recall100=statistics.fmean(recall) if recall else 0.0,
        p50_ms=percentile(latencies_ms, 0.5),
        p95_ms=percentile(latencies_ms, 0.95),
        embed_p50_ms=percentile(embed_ms, 0.5),
        embed_p95_ms=percentile(embed_ms, 0.95),
    )
