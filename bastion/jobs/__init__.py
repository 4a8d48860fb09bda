"""Background jobs: a durable job table as the source of truth, workers on taskiq (an in-process
broker on the embedded default, Redis Streams when ``redis_url`` is set), leases with heartbeats,
a sweeper and a start-up reconciler, cooperative cancellation, and per-item results written
exactly once. See docs/JOBS.md.

Capability only: nothing here knows the gateway or HTTP. Job kinds are registered by the
composition root (``bastion/gateway/compose.py``) in a ``JobRegistry``.
"""
