"""``n > 1`` for providers without it: ``n`` calls of one choice each, run side by side, merged into
one answer whose choices have distinct indexes and whose usage is the calls' sum.

Providers that serve ``n`` natively (``Provider.native_n``: OpenAI-compatible upstreams) get the
request as it is. For the others (Anthropic, the local model) at most ``MAX_PARALLEL`` calls run at
once; the local model's own slot pool queues what its slots cannot take. A stream's chunks are
passed on as they arrive from any of the calls, each relabelled with its choice's index and the
first call's id, and one usage chunk with the summed counts ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Provider, Usage

#: Calls of one fanned-out request in flight at once.
MAX_PARALLEL = 8


def choices_requested(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def _single(request: ChatRequest) -> ChatRequest:
    body = {key: value for key, value in request.body.items() if key != "n"}
    return replace(request, body=body)


def _sum(usages: list[Usage | None]) -> Usage | None:
    known = [usage for usage in usages if usage is not None]
    if not known:
        return None
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in known),
        completion_tokens=sum(u.completion_tokens for u in known),
        cached_tokens=sum(u.cached_tokens for u in known),
        cache_creation_tokens=sum(u.cache_creation_tokens for u in known),
        cache_creation_1h_tokens=sum(u.cache_creation_1h_tokens for u in known),
        estimated=any(u.estimated for u in known) or len(known) < len(usages),
    )


async def chat(provider: Provider, request: ChatRequest) -> ChatResponse:
    """A complete answer with ``n`` choices, from the provider's own ``n`` or from ``n`` calls."""
    n = choices_requested(request.body)
    if n == 1 or provider.native_n:
        return await provider.chat(request)
    single = _single(request)
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def one() -> ChatResponse:
        async with gate:
            return await provider.chat(single)

    # One failure fails the request (and cancels the other calls): the router may retry it.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one()) for _ in range(n)]
    responses = [task.result() for task in tasks]
    choices = []
    for index, response in enumerate(responses):
        for choice in response.body.get("choices") or ():
            if isinstance(choice, dict):
                choices.append({**choice, "index": index})
                break
    usage = _sum([response.usage for response in responses])
    body = {**responses[0].body, "choices": choices}
    if usage is not None and not usage.estimated:
        body["usage"] = usage.to_openai()
    else:
        body.pop("usage", None)  # the usage stage estimates it from every choice's text
        usage = None
    return ChatResponse(body=body, usage=usage)


def stream(provider: Provider, request: ChatRequest) -> ChunkStream:
    """A stream with ``n`` choices, from the provider's own ``n`` or from ``n`` streams."""
    n = choices_requested(request.body)
    if n == 1 or provider.native_n:
        return provider.stream_chat(request)
    single = _single(request)
    return _merged([lambda: provider.stream_chat(single) for _ in range(n)])


_END = object()


async def _merged(openers: list[Callable[[], ChunkStream]]) -> ChunkStream:
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def pump(index: int, open_stream: Callable[[], ChunkStream]) -> None:
        async with gate:
            chunks = open_stream()
            try:
                async for chunk in chunks:
                    await queue.put((index, chunk))
            except BaseException as exc:
                await queue.put((index, exc))
                raise
            finally:
                await chunks.aclose()
            await queue.put((index, _END))

    tasks = [asyncio.create_task(pump(index, opener)) for index, opener in enumerate(openers)]
    usages: list[Usage | None] = [None] * len(openers)
    head: dict[str, Any] | None = None
    running = len(openers)
    try:
        while running:
            index, item = await queue.get()
            if item is _END:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            chunk: dict[str, Any] = item
            if head is None:
                head = {key: chunk[key] for key in ("id", "created", "model") if key in chunk}
            if chunk.get("usage"):
                usages[index] = Usage.from_openai(chunk["usage"])
            choices = [{**choice, "index": index} for choice in chunk.get("choices") or () if isinstance(choice, dict)]
            if choices:
                relabelled = {**chunk, **head, "choices": choices}
                relabelled.pop("usage", None)  # the calls' summed usage ends the stream
                yield relabelled
        usage = _sum(usages)
        if usage is not None and not usage.estimated and head is not None:
            yield {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage.to_openai()}
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
