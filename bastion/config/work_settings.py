"""Configuration of background work and the objects it keeps: jobs, files, OpenAI and Anthropic
batches, bulk on agent sessions, stored responses, knowledge collections, human review and
datasets, experiments (sections of ``Settings`` in ``settings.py``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bastion.config.section import Strict


class BulkSettings(Strict):
    """Bulk on agent sessions (``/api/v1/ai/batch``, seed 000, docs/BULK.md): the submission limit
    and how a bulk run's items go upstream."""

    per_minute: int | None = Field(
        5, ge=1, description="Bulk submissions per minute per owner (user, else key); None: unlimited."
    )
    max_items: int = Field(1000, ge=1, le=100_000, description="Items one bulk submission may hold.")
    concurrency: int = Field(8, ge=1, le=256, description="Items of one bulk run in flight at once.")
    max_rate_limit_wait_s: float = Field(
        60.0,
        ge=0,
        description="An item refused by the gateway's rate limits (429) waits its Retry-After, at most this long "
        "per try, and is tried again; 0: not retried.",
    )
    prompt_caching: bool = Field(
        True,
        description="Mark the shared system prompt with cache_control for models with an Anthropic deployment "
        "(OpenAI caches the same stable prefix on its own).",
    )


class ResponsesSettings(Strict):
    """The OpenAI Responses API (``/v1/responses``, docs/RESPONSES.md): how long stored responses live."""

    retention_days: float = Field(
        30.0,
        gt=0,
        description="Stored responses (store: true, the default) are deleted this many days after their creation.",
    )
    sweep_interval_s: float = Field(3600.0, gt=0, description="How often expired stored responses are deleted.")


class JobsSettings(Strict):
    """Background jobs (``bastion/jobs``, docs/JOBS.md): workers, leases, the sweeper."""

    inprocess_workers: int | None = Field(
        None,
        ge=0,
        description="Jobs `bastion serve` runs at once in each of its processes (0: none, leave them to "
        "`bastion worker`). Unset: 2 on the embedded default (no redis_url), 0 when redis_url is set.",
    )
    lease_ttl_s: float = Field(
        30.0, gt=0, description="A running job whose worker sent no heartbeat for this long is handed out again."
    )
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often a worker renews the lease of each job it runs (keep well under lease_ttl_s)."
    )
    cancel_poll_s: float = Field(
        0.5, gt=0, le=1.0, description="How often a worker checks whether a running job was asked to stop."
    )
    sweep_interval_s: float = Field(
        2.0, gt=0, description="How often expired leases are re-queued and long-unclaimed jobs handed out again."
    )
    poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="Without Redis: how often a worker looks in the job table for queued jobs (what other "
        "processes queued; the embedded broker cannot cross processes).",
    )
    requeue_unclaimed_s: float = Field(
        60.0, gt=0, description="A queued job nobody claimed for this long is handed to the broker again."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts of a job before it fails (unless its kind says).")
    metrics_interval_s: float = Field(
        5.0, gt=0, description="How often the queued and running gauges are read from the job table."
    )
    redis_stream: str = Field("bastion:jobs", min_length=1, description="Redis stream the jobs are handed out on.")
    redis_group: str = Field("bastion-workers", min_length=1, description="Consumer group of the workers.")
    handler_modules: list[str] = Field(
        default_factory=list,
        description="Python modules with job kinds of their own: each defines `register(registry)`, "
        "imported when the gateway or a worker starts.",
    )


class FilesSettings(Strict):
    """The OpenAI Files API (``/v1/files``, docs/FILES.md): where uploads are kept, how large they may be."""

    directory: Path | None = Field(
        None, description="Where uploaded files are stored; default <data_dir>/files. Shared by every worker."
    )
    max_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="The largest upload, in bytes (OpenAI's batch limit: 200 MB); 413 beyond."
    )
    batch_max_requests: int = Field(50_000, ge=1, description="Requests (lines) a batch input file may hold.")
    sweep_interval_s: float = Field(3600.0, gt=0, description="How often expired files are deleted.")


class BatchesSettings(Strict):
    """The OpenAI and Anthropic batch APIs (docs/BATCHES.md): how batch lines are run."""

    concurrency: int = Field(
        8, ge=1, le=256, description="Lines of one batch in flight at once (each is one request through the pipeline)."
    )
    max_rate_limit_wait_s: float = Field(
        60.0,
        ge=0,
        description="A line refused by the deployment's rate limits (429) waits its Retry-After, at most this "
        "long per try, and is tried again until the batch's completion window ends; 0: not retried.",
    )
    status_poll_s: float = Field(
        1.0, gt=0, description="How often a running batch looks for a cancel request and its expiry."
    )


class KnowledgeSettings(Strict):
    """Knowledge collections and retrieval (docs/KNOWLEDGE.md)."""

    chunk_size: int = Field(
        200, ge=16, le=254, description="Default chunk size of a new collection, in the embedder's word pieces."
    )
    chunk_overlap: int = Field(40, ge=0, description="Default word pieces consecutive chunks share (whole sentences).")
    bm25_k1: float = Field(1.2, gt=0, description="BM25 term-frequency saturation (PostgreSQL; FTS5 fixes 1.2).")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation (PostgreSQL; FTS5 fixes 0.75).")
    fetch_k: int = Field(50, ge=1, le=1000, description="Candidates each retriever gives hybrid fusion and MMR.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank fusion's k.")
    max_document_bytes: int = Field(10 * 1024 * 1024, ge=1, description="The largest document accepted, in bytes.")
    sync_ingest_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="An upload of at most this many bytes (and sync_ingest_documents documents) is ingested "
        "while the request waits; a larger one runs as a knowledge_ingest job (202 and the job's id).",
    )
    sync_ingest_documents: int = Field(16, ge=0, description="The most documents one request ingests while it waits.")
    embed_batch: int = Field(256, ge=1, description="Chunks embedded per call during ingestion.")


class ReviewSettings(Strict):
    """Human review and fine-tune datasets (docs/REVIEW.md)."""

    reviewers_per_item: int = Field(
        2, ge=1, le=10, description="Reviewers each item gets unless a batch says otherwise."
    )
    lease_s: int = Field(900, ge=10, le=86_400, description="How long a claimed item stays locked to its reviewer.")
    min_quality: float = Field(
        3.0, ge=1, le=5, description="Default dataset threshold: mean score over the six dimensions."
    )
    max_example_tokens: int = Field(
        16_385, ge=1, description="Export warning threshold: tokens per example (OpenAI's cookbook limit)."
    )
    flagged_interval_s: float | None = Field(
        None,
        gt=0,
        description="Queue each tenant's newly flagged interactions for review (purpose 'flagged') this often, "
        "e.g. 86400 for seed 000's daily task; None: off.",
    )
    inline_export_max: int = Field(
        5_000,
        ge=10,
        description="Largest version GET /api/v1/admin/ai/finetune/export exports in the request; larger: a job.",
    )


class ExperimentsSettings(Strict):
    """Experiments on the gateway's traffic (docs/EXPERIMENTS.md)."""

    enabled: bool = Field(True, description="Assign requests to running experiments (the experiment stage).")
    cache_ttl_s: float = Field(
        5.0, gt=0, description="How long a process reuses a tenant's running experiments before reading them again."
    )
    bandit_interval_s: float = Field(
        3600.0, gt=0, description="How often running bandit experiments get new weights from the ledger."
    )
