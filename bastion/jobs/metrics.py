"""Job metrics in the process registry (``/metrics``): queued and running jobs by kind (read from
the job table, so every process shows the whole deployment's), run durations and failures (counted
by the process whose worker ran the job)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bastion.observability.metrics import REGISTRY

JOBS_QUEUED = Gauge("bastion_jobs_queued", "Jobs waiting for a worker, by kind.", ("kind",), registry=REGISTRY)
JOBS_RUNNING = Gauge("bastion_jobs_running", "Jobs a worker is running, by kind.", ("kind",), registry=REGISTRY)
JOB_DURATION = Histogram(
    "bastion_job_duration_seconds",
    "Time one attempt of a job ran, by kind and outcome (succeeded, failed, cancelled, retried).",
    ("kind", "outcome"),
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
    registry=REGISTRY,
)
JOB_FAILURES = Counter(
    "bastion_job_failures", "Jobs that failed for good (attempts used up), by kind.", ("kind",), registry=REGISTRY
)


def set_counts(counts: dict[tuple[str, str], int], known: set[str]) -> set[str]:
    """Set the gauges from the table's (kind, state) counts; kinds seen before and now absent go
    to 0. Returns every kind shown."""
    kinds = known | {kind for kind, _ in counts}
    for kind in kinds:
        JOBS_QUEUED.labels(kind=kind).set(counts.get((kind, "queued"), 0))
        JOBS_RUNNING.labels(kind=kind).set(counts.get((kind, "running"), 0))
    return kinds
