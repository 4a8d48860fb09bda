"""Job kinds for the tests that run real workers, loaded through ``jobs.handler_modules``.

``test.echo``: returns its payload. ``test.count``: items ``item-0000`` .. ``item-{n-1}``; for
each item not done yet, one POST to a counter (the per-item side effect, like an upstream call),
then its result, written once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bastion.jobs.context import JobContext
from bastion.jobs.registry import JobRegistry

KIND = "test.count"
ECHO = "test.echo"


def item_key(i: int) -> str:
    return f"item-{i:04d}"


async def count_items(ctx: JobContext) -> Any:
    n = int(ctx.payload["items"])
    delay_s = float(ctx.payload.get("delay_s", 0.0))
    done = await ctx.done_items()
    ctx.progress(len(done), n)
    async with httpx.AsyncClient(base_url=ctx.payload["counter_url"], timeout=10) as client:
        for i in range(n):
            key = item_key(i)
            if key in done:
                continue
            ctx.check_cancelled()
            answer = await client.post("/count", json={"job": ctx.id, "item": key, "worker": ctx.owner})
            answer.raise_for_status()
            if delay_s:
                await asyncio.sleep(delay_s)  # the item's work takes a moment
            await ctx.write_item(key, {"item": key, "worker": ctx.owner})
            done.add(key)
            ctx.progress(len(done), n)
    return {"items": n}


async def echo(ctx: JobContext) -> Any:
    return {"echo": ctx.payload}


def register(registry: JobRegistry) -> None:
    registry.register(KIND, count_items, max_attempts=5)
    registry.register(ECHO, echo)
