"""The request pipeline: an explicit, ordered list of stages around the routed upstream call.

    stage.on_request   in order      (auth, limits, session, prompt, guard in, cache, ...)
    router             route + provider call, with retries and fallbacks
    stage.on_response  reverse order (guard out, usage, ...)      for complete answers
    stage.on_stream    reverse order, each wrapping the chunk stream        for streams
    stage.on_complete  reverse order, always, once the answer is over  (ledger, metrics, ...)

A stage that raises ``BastionError`` in ``on_request`` rejects the request; ``on_complete`` still
runs for every stage whose ``on_request`` was reached, so reservations can be released. A stage is
one module with one idea and can be tested alone with a fake router.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog

from bastion.errors import BastionError
from bastion.gateway.context import RequestContext
from bastion.providers.base import ChatRequest, ChatResponse, EmbeddingResponse
from bastion.routing.router import Router

log = structlog.get_logger("bastion.pipeline")

Chunks = AsyncIterator[dict[str, Any]]


class Stage:
    """A pipeline stage. Override what you need; the defaults pass everything through."""

    name: str = "stage"

    async def start(self) -> None:
        """Acquire resources (background tasks, connections) before the first request."""

    async def stop(self) -> None:
        """Release them; called once at shut-down after requests have drained."""

    async def on_request(self, ctx: RequestContext) -> None:
        """Inspect or change the request before it is routed; raise to reject it."""

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        """Inspect or change a complete answer."""
        return response

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        """Wrap a stream of chunks; runs before any chunk is pulled."""
        return chunks

    async def on_complete(self, ctx: RequestContext) -> None:
        """Called once when the exchange is over, successful or not. Must not raise."""


class Pipeline:
    def __init__(self, stages: Sequence[Stage], router: Router) -> None:
        self.stages = list(stages)
        self.router = router

    async def chat(self, ctx: RequestContext) -> ChatResponse | Chunks:
        """Run a chat request. A stream is returned primed: its first chunk has arrived."""
        entered = 0
        try:
            for stage in self.stages:
                entered += 1
                await stage.on_request(ctx)
            request = ChatRequest(body=ctx.body, request_id=ctx.request_id, stream=ctx.stream)
            if ctx.stream and ctx.response is None:
                chunks: Chunks = await self.router.stream(request, ctx.model, ctx.trace)
                for stage in reversed(self.stages):
                    chunks = stage.on_stream(ctx, chunks)
                return self._completing(ctx, chunks)
            response = ctx.response or await self.router.chat(request, ctx.model, ctx.trace)
            for stage in reversed(self.stages):
                response = await stage.on_response(ctx, response)
            ctx.response = response
        except BaseException as exc:
            self._note_failure(ctx, exc)
            await self._complete(ctx, self.stages[:entered])
            raise
        await self._complete(ctx, self.stages)
        return response

    async def embed(self, ctx: RequestContext, inputs: list[str]) -> EmbeddingResponse:
        entered = 0
        try:
            for stage in self.stages:
                entered += 1
                await stage.on_request(ctx)
            dimensions = ctx.body.get("dimensions")
            result = await self.router.embed(inputs, ctx.model, ctx.request_id, ctx.trace, dimensions)
            ctx.usage = result.usage
        except BaseException as exc:
            self._note_failure(ctx, exc)
            await self._complete(ctx, self.stages[:entered])
            raise
        await self._complete(ctx, self.stages)
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
            await chunks.aclose()  # type: ignore[attr-defined]
            await self._complete(ctx, self.stages)

    @staticmethod
    def _note_failure(ctx: RequestContext, exc: BaseException) -> None:
        if isinstance(exc, BastionError):
            ctx.error = exc
            ctx.status = exc.status
        elif isinstance(exc, GeneratorExit | KeyboardInterrupt) or exc.__class__.__name__ == "CancelledError":
            # The client went away: nginx's convention for "client closed request".
            ctx.status = 499
        else:
            ctx.error = BastionError("internal error")
            ctx.status = 500

    @staticmethod
    async def _complete(ctx: RequestContext, stages: Sequence[Stage]) -> None:
        ctx.finished_at = time.perf_counter()
        for stage in reversed(stages):
            try:
                await stage.on_complete(ctx)
            except Exception:
                log.exception("stage_complete_failed", stage=stage.name, request_id=ctx.request_id)
