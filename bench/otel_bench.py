"""OpenTelemetry export micro-benchmark (not collected by pytest): what the export costs a request.

    .venv/bin/python -m bench.otel_bench [--requests 2000] [--rounds 5]

The whole app in process (ASGI client, every stage, a fake router: no network, no port), chat
requests one after another, with the export off, on (metadata only) and on with content (redacted
by the exporter's thread); the guard is off, so the difference is the export's. The spans go to
the SDK's batch processor over an in-memory exporter, so the numbers are the gateway's side of
the export (stage, queue, the exporter thread competing for the interpreter), not a collector's.
Rounds alternate between the modes, so a machine that gets busier mid-run slows every mode alike.
It also reports how many records per second the exporter's thread turns into spans and
measurements.

With the export off the pipeline has no OpenTelemetry stage at all: ``off`` is the gateway as
``bench/run_gateway_bench.sh`` measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bastion.config.otel_settings import OtelSettings
from bastion.gateway.service import Gateway
from bastion.observability.genai import Upstream
from bastion.observability.otel import OtelExporter, RedactorFactory
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.observability.fake_router import FakeRouter
from tests.support.harness import RunningGateway, make_settings, running_gateway

MODELS = [{"name": "gpt-4o", "deployments": [{"provider": "openai", "model": "gpt-4o-2024-08-06", "id": "gpt4o-east"}]}]
BODY = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 4},
        {"role": "user", "content": "Summarise the following paragraph in one sentence. " * 6},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}
MODES = {"off": None, "on": False, "on+content": True}


def in_memory_from_settings(
    cls: type[OtelExporter], otel: OtelSettings, upstreams: dict[str, Upstream], redactor: RedactorFactory | None
) -> OtelExporter:
    """The composition root's exporter with a batch processor over an in-memory exporter."""
    spans = BatchSpanProcessor(InMemorySpanExporter())
    return OtelExporter.for_tests(spans, InMemoryMetricReader(), upstreams, redactor if otel.content else None)


@contextlib.asynccontextmanager
async def gateway(db: Path, data: Path, content: bool | None) -> AsyncIterator[RunningGateway]:
    otel: dict[str, Any] = {"enabled": content is not None, "content": bool(content)}
    settings = make_settings(
        f"sqlite:///{db}", data, auth={"enabled": False}, guard={"enabled": False}, models=MODELS, otel=otel
    )
    router = FakeRouter()

    def use_fake_router(gateway: Gateway) -> None:
        gateway.pipeline.router = router

    async with running_gateway(settings, before_start=use_fake_router) as env:
        yield env


async def one_round(env: RunningGateway, requests: int) -> tuple[float, list[float]]:
    """Mean microseconds per request, and each request's microseconds."""
    each: list[float] = []
    started = time.perf_counter()
    for _ in range(requests):
        sent = time.perf_counter()
        response = await env.client.post("/v1/chat/completions", json=BODY)
        each.append((time.perf_counter() - sent) * 1e6)
        assert response.status_code == 200, response.text
    elapsed = time.perf_counter() - started
    otel = env.gateway.services.otel
    if isinstance(otel, OtelExporter):
        await asyncio.to_thread(otel.flush)  # the round's spans are made before the next round starts
    return elapsed / requests * 1e6, each


def exporter_throughput(records: int) -> float:
    exporter = in_memory_from_settings(OtelExporter, OtelSettings(), {"gpt4o-east": Upstream.of("openai", None)}, None)
    record = {
        "id": "req_1",
        "ts": time.time(),
        "endpoint": "chat",
        "dialect": "openai",
        "model": "gpt-4o",
        "deployment": "gpt4o-east",
        "status": 200,
        "prompt_tokens": 40,
        "completion_tokens": 12,
        "latency_ms": 120.0,
        "finish_reason": "stop",
        "operation": "chat",
        "max_tokens": 64,
        "tenant_id": "t",
    }
    started = time.perf_counter()
    for _ in range(records):
        exporter.export(record)
    rate = records / (time.perf_counter() - started)
    exporter.tracer_provider.shutdown()
    exporter.meter_provider.shutdown()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and mode")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    OtelExporter.from_settings = classmethod(in_memory_from_settings)  # type: ignore[method-assign,assignment]
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        db = Database.from_settings(make_settings(f"sqlite:///{template}", Path(tmp)))
        await upgrade(db.engine)
        await db.dispose()
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
        async with contextlib.AsyncExitStack() as stack:
            envs = {}
            for mode, content in MODES.items():
                path = Path(tmp) / f"{mode}.db"
                shutil.copyfile(template, path)
                envs[mode] = await stack.enter_async_context(gateway(path, Path(tmp) / mode, content))
                await one_round(envs[mode], 200)  # warm-up (guard detectors, the redactor's first use)
            for _ in range(args.rounds):
                for mode, env in envs.items():
                    mean, each = await one_round(env, args.requests)
                    samples[mode].append(mean)
                    latencies[mode] += each
    base = statistics.median(samples["off"])
    print("µs per request: the rounds' means (median, min, max), and p50/p99 over every request")
    print(f"{'mode':<12} {'median':>8} {'min':>8} {'max':>8} {'vs off':>8} {'p50':>8} {'p99':>8}")
    for mode, values in samples.items():
        median = statistics.median(values)
        cuts = statistics.quantiles(latencies[mode], n=100)
        print(
            f"{mode:<12} {median:>8.0f} {min(values):>8.0f} {max(values):>8.0f} {median / base - 1:>+8.1%}"
            f" {cuts[49]:>8.0f} {cuts[98]:>8.0f}"
        )
    print(f"exporter thread: {exporter_throughput(20_000):,.0f} records/s (span + 3 measurements, no content)")


if __name__ == "__main__":
    asyncio.run(main())
