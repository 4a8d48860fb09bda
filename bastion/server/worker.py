"""``bastion worker``: a process that runs jobs and serves no HTTP.

It builds the same gateway as ``bastion serve`` (job handlers may call models through the
pipeline, write the ledger, read the vault), with ``concurrency`` jobs at a time, and runs until
SIGTERM or SIGINT; then attempts under way are given back to the queue. ``processes`` > 1 starts
that many worker processes (each ``bastion worker --processes 1``) and waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence

import structlog

from bastion.config.settings import Settings
from bastion.gateway.compose import build_gateway
from bastion.observability.logging import configure_logging

log = structlog.get_logger("bastion.jobs")


async def run_worker(settings: Settings, concurrency: int, metrics_port: int | None = None) -> None:
    gateway = build_gateway(settings, job_workers=concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from bastion.observability.metrics import REGISTRY

        start_http_server(metrics_port, addr="127.0.0.1", registry=REGISTRY)
    print(f"bastion: worker running {concurrency} job(s) at a time", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        log.info("worker_stopping")
        await gateway.stop()


def worker_main(settings: Settings, concurrency: int, metrics_port: int | None = None) -> None:
    configure_logging(settings.logging)
    # Bastion's own events go through structlog; libraries' INFO lines (each SQL statement,
    # each taskiq message) are noise here: warnings and errors only, as under ``bastion serve``.
    for name in ("", "sqlalchemy.engine", "sqlalchemy.pool", "taskiq", "taskiq_redis"):
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    asyncio.run(run_worker(settings, concurrency, metrics_port))


def supervise(argv: Sequence[str], processes: int) -> int:
    """Run ``processes`` copies of ``argv`` (one worker each); forward SIGTERM/SIGINT; the first
    non-zero exit status, else 0."""
    children = [subprocess.Popen(list(argv)) for _ in range(processes)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return next((code for code in codes if code), 0)
