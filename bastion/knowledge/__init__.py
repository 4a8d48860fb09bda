"""Knowledge collections: chunking, idempotent ingestion, BM25 / dense / hybrid retrieval with
provenance (docs/KNOWLEDGE.md). A capability: plain values in and out, no HTTP, no gateway."""
