"""Exporting a large dataset version: time and peak memory of ``DatasetService`` exports.

Builds a version of ``--examples`` (default 50,000) frozen examples directly in a fresh database
(SQLite in a temporary directory unless ``--database``): a mix of single-turn questions, multi-turn
conversations and tool calls, about 150 tokens each. Then exports it once per ``--formats``
(render, validate every line, count tokens, stream to a temporary file, store it as a file) and
prints for each: wall time, examples per second, the file's size, and the peak of Python's own
allocations during the export (``tracemalloc``, which slows the run down: time with ``--no-trace``)
besides the process's peak RSS. A second, smaller
run (``--small``, default 5,000) shows that memory does not grow with the dataset: the export reads
and writes page by page; what grows is one integer per example (the token distribution).

    python bench/export_bench.py [--examples 50000] [--formats openai,anthropic] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import tracemalloc
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
from sqlalchemy import insert

from bastion.auth.principal import Principal, Role
from bastion.config.settings import Settings
from bastion.config.work_settings import FilesSettings, ReviewSettings
from bastion.files.service import FileService
from bastion.review.datasets import DatasetService
from bastion.review.models import Dataset, DatasetExample, DatasetVersion
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import Tenant

WORDS = [
    "the",
    "order",
    "shipped",
    "on",
    "monday",
    "and",
    "the",
    "invoice",
    "follows",
    "by",
    "mail",
    "within",
    "three",
    "working",
    "days",
]


def text(i: int, words: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words)) + f" #{i}."


def example(i: int) -> dict[str, Any]:
    if i % 10 == 0:  # a tool call in the history
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": text(i, 30)},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 1}"}}
            ]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": text(i + 1, 20)},
            {"role": "user", "content": text(i + 2, 15)},
        ]  # fmt: skip
    elif i % 3 == 0:  # multi-turn
        messages = [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": text(i, 25)},
            {"role": "assistant", "content": text(i + 3, 30)},
            {"role": "user", "content": text(i + 4, 20)},
        ]
    else:
        messages = [{"role": "user", "content": text(i, 40)}]
    return {"interaction_id": f"req-{i:08d}", "messages": messages, "answer": text(i + 5, 60), "prompt_id": None}


async def seed(db: Database, count: int, name: str) -> Principal:
    async with db.transaction() as session:
        tenant = Tenant(name=f"bench-{name}")
        session.add(tenant)
        await session.flush()
        dataset = Dataset(tenant_id=tenant.id, name=name, created_by="bench")
        session.add(dataset)
        await session.flush()
        version = DatasetVersion(
            tenant_id=tenant.id, dataset_id=dataset.id, version=1, kind="sft", manifest={"counts": {}},
            example_count=count, created_by="bench",
        )  # fmt: skip
        session.add(version)
        await session.flush()
        for start in range(0, count, 2000):
            rows = [
                {"version_id": version.id, "position": i, "interaction_id": f"req-{i:08d}",
                 "example": orjson.dumps(example(i)).decode()}
                for i in range(start, min(count, start + 2000))
            ]  # fmt: skip
            await session.execute(insert(DatasetExample), rows)
    return Principal(tenant_id=tenant.id, tenant_name=tenant.name, role=Role.ADMIN, key_id="bench")


async def export(service: DatasetService, principal: Principal, name: str, fmt: str, trace: bool) -> dict[str, Any]:
    conversation = fmt in ("anthropic", "bedrock-conversation")
    repairs = ["drop_tool_turns", "merge_consecutive"] if conversation else []
    body = {"format": fmt, "system": "none", "repairs": repairs}
    if trace:
        tracemalloc.start()
    started = perf_counter()
    result = await service.request_export(principal, name, 1, body, background=False)
    elapsed = perf_counter() - started
    peak = 0
    if trace:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"format": fmt, "seconds": elapsed, "peak_mb": peak / 2**20, "result": result}


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="export-bench-"))
    url = args.database or f"sqlite:///{workdir / 'bench.db'}"
    db = Database.from_settings(Settings(database_url=url))
    await upgrade(db.engine)
    files = FileService(db, FilesSettings(max_bytes=2**34), workdir)
    await files.start()

    async def reader(tenant_id: str, prompt_id: str, version: int, *, actor: str) -> str | None:
        return None

    service = DatasetService(db, files, ReviewSettings(), reader, scratch_dir=workdir / "scratch")
    try:
        for count, name in ((args.small, "small"), (args.examples, "large")):
            started = perf_counter()
            principal = await seed(db, count, name)
            print(f"seeded {count:,} examples in {perf_counter() - started:.1f} s")
            for fmt in args.formats.split(","):
                run = await export(service, principal, name, fmt, args.trace)
                result = run["result"]
                rate = count / run["seconds"]
                print(
                    f"{name:5} {count:>7,} {fmt:20} {run['seconds']:7.2f} s  {rate:8,.0f} examples/s  "
                    f"file {result['bytes'] / 2**20:6.1f} MB  lines {result['lines']:,}  "
                    f"python peak {run['peak_mb']:6.1f} MB"
                )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS over the whole run: {rss:.0f} MB")
    finally:
        await files.stop()
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--formats", default="openai,anthropic")
    parser.add_argument("--database", default=None, help="A database URL (default: SQLite in a temporary directory).")
    parser.add_argument(
        "--no-trace", dest="trace", action="store_false", help="Time without tracemalloc (which slows Python down)."
    )
    os.environ.setdefault("BASTION_LOG_LEVEL", "warning")
    asyncio.run(main(parser.parse_args()))
