"""Batch throughput: lines per second through the whole pipeline to the static mock upstream.

    (cd to the repository) .venv/bin/python -m bench.batch_bench [--lines 2000] [--batches 2] [--concurrency 8]
        [--redis redis://127.0.0.1:6379/7] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Two set-ups, each timed from the first ``POST /v1/batches`` to the last batch ``completed``:

- embedded: ``bastion serve`` alone (SQLite, the in-process broker, its own two job workers);
- Redis + PostgreSQL: ``bastion serve`` running no jobs (``jobs.inprocess_workers: 0``) and two
  ``bastion worker`` processes on Redis Streams, over a fresh PostgreSQL database (skipped when
  either service does not answer).

``--batches`` batches of ``--lines`` lines each are created at once (each batch is one job, so
two batches keep two workers busy); ``--concurrency`` is ``batches.concurrency``, the lines of one
batch in flight at once. Every line is a chat completion through auth (off), the guard, the cache
(each line is distinct, so a miss), the ledger (SQLite or PostgreSQL) and the router to the nginx
mock of bench/mock_upstream.nginx.conf, pinned with the gateway and workers to CPU 0 and the mock
to CPU 1, as the other gateway benchmarks (bench/README.md). Time includes validating the input
file and writing the output file. It prints numbers; it never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from bench.cache_bench import BASTION, GATEWAY_CPU, LOAD_CPU, LOCK_FILE, NGINX_TEMPLATE, free_port, started, wait_http


def batch_input(lines: int, tag: str) -> bytes:
    rows = (
        {
            "custom_id": f"{tag}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "bench-model", "messages": [{"role": "user", "content": f"Line {tag}-{i}: say hi."}]},
        }
        for i in range(lines)
    )
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def run_batches(url: str, count: int, lines: int) -> tuple[float, list[dict[str, Any]]]:
    """Create ``count`` batches of ``lines`` lines at once; seconds until every one completed."""
    with httpx.Client(base_url=url, timeout=60) as client:
        files = [
            client.post(
                "/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", batch_input(lines, f"b{n}"))}
            ).json()["id"]
            for n in range(count)
        ]
        started_at = time.perf_counter()
        ids = [
            client.post(
                "/v1/batches",
                json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
            ).json()["id"]
            for file_id in files
        ]
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(ids):
            for batch_id in ids:
                if batch_id in done:
                    continue
                batch = client.get(f"/v1/batches/{batch_id}").json()
                if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                    done[batch_id] = batch
            time.sleep(0.05)
        return time.perf_counter() - started_at, list(done.values())


def config(tmp: Path, mock_port: int, concurrency: int, **extra: Any) -> Path:
    body = {
        "models": [
            {
                "name": "bench-model",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "api_base": f"http://127.0.0.1:{mock_port}/v1",
                        "api_key": "bench",
                    }
                ],
            }
        ],
        "auth": {"enabled": False},
        "local": {"enabled": False},
        "data_dir": str(tmp / "data"),
        "logging": {"level": "warning"},
        "batches": {"concurrency": concurrency},
        **extra,
    }
    path = tmp / f"bastion-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@contextlib.contextmanager
def gateway(path: Path, tmp: Path, workers: int = 0) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    port = free_port()
    serve = ["taskset", "-c", GATEWAY_CPU, str(BASTION), "serve", "--config", str(path), "--port", str(port)]
    with contextlib.ExitStack() as stack:
        process = stack.enter_context(started([*serve, "--workers", "1"], tmp / f"gateway-{port}.log", env))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", process)
        for n in range(workers):
            worker = ["taskset", "-c", GATEWAY_CPU, str(BASTION), "worker", "--config", str(path), "--concurrency", "2"]
            stack.enter_context(started(worker, tmp / f"worker-{port}-{n}.log", env))
        yield url


def report(name: str, seconds: float, batches: list[dict[str, Any]]) -> None:
    total = sum(batch["request_counts"]["total"] for batch in batches)
    completed = sum(batch["request_counts"]["completed"] for batch in batches)
    failed = sum(batch["request_counts"]["failed"] for batch in batches)
    statuses = sorted({batch["status"] for batch in batches})
    print(
        f"{name:<38} {total:>7} lines  {seconds:>7.2f} s  {total / seconds:>8.1f} lines/s  "
        f"completed {completed}  failed {failed}  status {','.join(statuses)}"
    )


async def fresh_pg_database(server: str) -> str | None:
    import asyncpg

    name = f"bastion_batch_bench_{uuid.uuid4().hex[:8]}"
    try:
        connection = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    except Exception as exc:
        print(f"PostgreSQL at {server} does not answer ({type(exc).__name__}): skipped")
        return None
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


def redis_answers(url: str) -> bool:
    from redis import Redis

    try:
        return bool(Redis.from_url(url, socket_timeout=2).ping())
    except Exception as exc:
        print(f"Redis at {url} does not answer ({type(exc).__name__}): skipped")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000, help="lines per batch")
    parser.add_argument("--batches", type=int, default=2, help="batches created at once")
    parser.add_argument("--concurrency", type=int, default=8, help="batches.concurrency")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    options = parser.parse_args()
    for tool in ("nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run `bash bench/run_gateway_bench.sh` once (it installs nginx and wrk)")
    lock = LOCK_FILE.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # never two benchmarks on the same two cores
    tmp = Path(tempfile.mkdtemp(prefix="bastion-batch-bench."))
    tmp.chmod(0o755)  # nginx's worker runs as nobody
    mock_port = free_port()
    rendered = NGINX_TEMPLATE.read_text().replace("@PORT@", str(mock_port)).replace("@TMP@", str(tmp))
    (tmp / "nginx.conf").write_text(rendered)
    mock_args = ["taskset", "-c", LOAD_CPU, "nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"]
    print(
        f"{options.batches} batches x {options.lines} lines, batches.concurrency {options.concurrency}; gateway and "
        f"workers on CPU {GATEWAY_CPU}, nginx mock on CPU {LOAD_CPU}; load average {os.getloadavg()[0]:.1f}"
    )
    with started(mock_args, tmp / "nginx.log") as mock:
        wait_http(f"http://127.0.0.1:{mock_port}/healthz", mock)
        embedded = config(tmp, mock_port, options.concurrency, database_url=f"sqlite:///{tmp / 'embedded.db'}")
        with gateway(embedded, tmp) as url:
            seconds, batches = run_batches(url, options.batches, options.lines)
        report("embedded (SQLite, in-process workers)", seconds, batches)
        database = asyncio.run(fresh_pg_database(options.pg)) if redis_answers(options.redis) else None
        if database is not None:
            suffix = uuid.uuid4().hex[:8]
            jobs = {"inprocess_workers": 0, "redis_stream": f"bench:jobs:{suffix}", "redis_group": f"bench-{suffix}"}
            # A fresh database: the gateway migrates it (PostgreSQL is not migrated on start by default).
            remote = config(
                tmp,
                mock_port,
                options.concurrency,
                database_url=database,
                redis_url=options.redis,
                jobs=jobs,
                auto_migrate=True,
            )
            with gateway(remote, tmp, workers=2) as url:
                seconds, batches = run_batches(url, options.batches, options.lines)
            report("Redis + PostgreSQL, 2 bastion workers", seconds, batches)
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
