"""The request pipeline: an explicit, ordered list of stages around the routed upstream call.

    stage.on_request   in order      (auth, ledger, metrics, prompt, guard in, limits, ...)
    router             route + provider call, with retries and fallbacks
    stage.on_response  reverse order (guard out, usage, ...)      for complete answers
    stage.on_stream    reverse order, each wrapping the chunk stream        for streams
    stage.on_complete  reverse order, always, once the answer is over  (cost, limits, ledger, ...)

The order itself lives in one place, ``build_stages`` in ``bastion/gateway/compose.py``.

A stage that raises ``BastionError`` in ``on_request`` rejects the request; ``on_complete`` still
runs for every stage whose ``on_request`` was reached, so reservations can be released. A stage is
one module with one idea and can be tested alone with fakes of its collaborators.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import structlog

from bastion.errors import BastionError
from bastion.gateway.answers import as_chunks
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse
from bastion.routing.trace import RouteTrace

log = structlog.get_logger("bastion.pipeline")

T = TypeVar("T")


class Upstreams(Protocol):
    """Where a routed call goes: the router (``bastion/routing/router.py``), or a test's fake."""

    async def chat(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChatResponse: ...

    async def stream(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChunkStream: ...

    async def embed(
        self, inputs: list[str], model: str, request_id: str, trace: RouteTrace, dimensions: int | None = None
    ) -> EmbeddingResponse: ...


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook, None) is not getattr(Stage, hook)


class Pipeline:
    def __init__(self, stages: Sequence[Stage], router: Upstreams) -> None:
        self.stages = list(stages)
        self.router = router
        # Only the stages that override a hook are called for it: awaiting a pass-through default
        # costs a coroutine per stage and request, for nothing. Indexes keep "entered" exact.
        indexed = list(enumerate(self.stages))
        self._on_request = [(i, stage) for i, stage in indexed if _overrides(stage, "on_request")]
        self._on_response = [stage for stage in reversed(self.stages) if _overrides(stage, "on_response")]
        self._on_stream = [stage for stage in reversed(self.stages) if _overrides(stage, "on_stream")]
        self._on_complete = [(i, stage) for i, stage in reversed(indexed) if _overrides(stage, "on_complete")]

    async def chat(self, ctx: RequestContext) -> ChatResponse | Chunks:
        """Run a chat request. A stream is returned primed: its first chunk has arrived."""

        async def call() -> ChatResponse | Chunks:
            request = ChatRequest(
                body=ctx.body,
                request_id=ctx.request_id,
                stream=ctx.stream,
                text_completion=ctx.text_completion,
                passthrough=ctx.passthrough,
            )
            if ctx.stream:
                # A stage may have answered already (a refusal, a cache hit): its answer goes out as a stream.
                chunks: Chunks = (
                    await self.router.stream(request, ctx.model, ctx.trace)
                    if ctx.response is None
                    else as_chunks(ctx.response)
                )
                for stage in self._on_stream:
                    chunks = stage.on_stream(ctx, chunks)
                return chunks
            response = ctx.response or await self.router.chat(request, ctx.model, ctx.trace)
            for stage in self._on_response:
                response = await stage.on_response(ctx, response)
            ctx.response = response
            return response

        result = await self._run(ctx, call, completes_later=ctx.stream)
        if isinstance(result, ChatResponse):
            return result
        return self._completing(ctx, result)

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        """Run an embeddings request; its texts are ``ctx.body["input"]`` as the stages left it
        (the guard may have redacted them)."""

        async def call() -> EmbeddingResponse:
            raw = ctx.body.get("input")
            inputs = [raw] if isinstance(raw, str) else [text for text in raw or () if isinstance(text, str)]
            dimensions = ctx.body.get("dimensions")
            result = await self.router.embed(inputs, ctx.model, ctx.request_id, ctx.trace, dimensions)
            ctx.usage = result.usage
            return result

        return await self._run(ctx, call)

    async def _run(self, ctx: RequestContext, call: Callable[[], Awaitable[T]], *, completes_later: bool = False) -> T:
        """The stages' ``on_request`` in order, then ``call``; the stages complete here unless the
        answer is a stream (``completes_later``), which completes when it is closed."""
        entered = 0  # stages whose on_request ran (or would have): they are completed on failure
        try:
            for index, stage in self._on_request:
                entered = index + 1
                await stage.on_request(ctx)
            entered = len(self.stages)
            result = await call()
        except BaseException as exc:
            self._note_failure(ctx, exc)
            await self._complete(ctx, entered)
            raise
        if not completes_later:
            await self._complete(ctx, entered)
        return result

    async def _completing(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        try:
            async for chunk in chunks:
                if ctx.first_chunk_at is None:
                    ctx.first_chunk_at = time.perf_counter()
                yield chunk
        except BaseException as exc:
            self._note_failure(ctx, exc)
            raise
        finally:
            await chunks.aclose()
            await self._complete(ctx, len(self.stages))

    @staticmethod
    def _note_failure(ctx: RequestContext, exc: BaseException) -> None:
        if isinstance(exc, BastionError):
            ctx.error = exc
            ctx.status = exc.status
        elif isinstance(exc, GeneratorExit | KeyboardInterrupt | asyncio.CancelledError):
            # The client went away: nginx's convention for "client closed request".
            ctx.status = 499
        else:
            ctx.error = BastionError("internal error")
            ctx.status = 500

    async def _complete(self, ctx: RequestContext, entered: int) -> None:
        """``on_complete`` of the first ``entered`` stages, last first."""
        ctx.finished_at = time.perf_counter()
        for index, stage in self._on_complete:
            if index >= entered:
                continue
            try:
                await stage.on_complete(ctx)
            except Exception:
                log.exception("stage_complete_failed", stage=stage.name, request_id=ctx.request_id)
