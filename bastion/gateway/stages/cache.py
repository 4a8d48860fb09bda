"""Cache stage: answers repeated deterministic requests from the response cache (docs/CACHES.md).

Where it sits: after auth, prompt, guard in and limits, before cost, usage and guard out.

- After **guard in**: a blocked request is refused (or answered with the guard's refusal, which
  the stage leaves alone) before the cache is consulted, so a blocked prompt is never answered
  from the cache; a redacted one is keyed on what would go upstream.
- After **limits**: a hit still counts as a request (and its tokens) for rate limits, but it costs
  nothing: no deployment answered, so the cost stage prices it at 0 and the budget settles at 0.
- Before **usage** and **guard out** in the list, so on the way out it sees an answer after both:
  only answers the output guard let through untouched are stored, and a hit goes through both as
  usual (the output guard checks a cached answer against the current caller's policy and prompt).

On a hit the stage sets ``ctx.response``: the pipeline skips the router and (for a streamed
request) plays the answer as a stream. Every chat response says what happened in
``x-bastion-cache`` (``hit``, ``semantic-hit`` with ``x-bastion-cache-similarity``, ``miss``,
``bypass``); the ledger's ``extra`` records it, ``/metrics`` counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bastion.cache.answers import StreamAnswer
from bastion.cache.keys import KeyMaterial
from bastion.cache.metrics import CACHE_BYPASSES, CACHE_REQUESTS
from bastion.cache.service import SCOPES, ResponseCache, cache_control
from bastion.cache.state import CacheState
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.providers.base import ChatResponse, Usage

HEADER = "x-bastion-cache"
SIMILARITY_HEADER = "x-bastion-cache-similarity"
#: The model name a request names -> the alias group it resolves to (None: unknown, or not chat).
ResolveModel = Callable[[str], str | None]


class _PolicyJSON:
    """The guard policy's JSON, once per policy object (the resolver caches policies)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._seen: dict[int, tuple[object, str]] = {}

    def __call__(self, policy: Any) -> str:
        if policy is None:
            return ""
        found = self._seen.get(id(policy))
        if found is not None and found[0] is policy:
            return found[1]
        text = str(policy.model_dump_json())
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[id(policy)] = (policy, text)
        return text


def _layers(ctx: RequestContext) -> list[tuple[str, Any]]:
    principal = ctx.principal
    layers: list[tuple[str, Any]] = []
    if principal is not None:
        for scope, settings in zip(
            SCOPES, (principal.tenant_settings, principal.user_settings, principal.key_settings), strict=False
        ):
            value = settings.get("cache") if settings else None
            if value is not None:
                layers.append((scope, value))
    if ctx.prompt is not None and ctx.prompt.cache is not None:
        layers.append(("prompt", ctx.prompt.cache))
    return layers


def _output_untouched(ctx: RequestContext) -> bool:
    """Nothing failed and the output guard neither redacted nor withheld anything."""
    if ctx.error is not None:
        return False
    output = ctx.guard.output if ctx.guard is not None else None
    return output is None or output.action == "allow"


class CacheStage(Stage):
    name = "cache"

    def __init__(self, cache: ResponseCache, resolve_model: ResolveModel) -> None:
        self.cache = cache
        self.resolve_model = resolve_model
        self._policy_json = _PolicyJSON()

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.endpoint != "chat" or ctx.response is not None:
            return  # not a chat, or answered by an earlier stage (the guard's refusal): no cache
        state = ctx.cache = self._plan(ctx)
        if state.outcome == "miss":
            body = await self.cache.lookup(state)
            if body is not None:
                self._answer(ctx, state, body)
        if state.outcome == "bypass" and state.reason is not None:
            CACHE_BYPASSES.labels(reason=state.reason).inc()
        CACHE_REQUESTS.labels(model=state.model, outcome=state.outcome.replace("-", "_")).inc()
        headers: dict[str, str] = {HEADER: state.outcome}
        if state.similarity is not None:
            headers[SIMILARITY_HEADER] = f"{state.similarity:.4f}"
        ctx.add_response_headers(headers)
        ctx.ledger_extra = {**(ctx.ledger_extra or {}), **state.to_ledger()}

    def _plan(self, ctx: RequestContext) -> CacheState:
        model = self.resolve_model(ctx.model)
        if model is None:
            return CacheState("bypass", "unrouted", reason="unknown-model")
        if ctx.passthrough is not None:
            # A Responses request relayed to a native upstream as sent: not a chat answer to keep.
            return CacheState("bypass", model, reason="passthrough")
        principal = ctx.principal
        material = KeyMaterial(
            tenant=principal.tenant_id if principal is not None else "",
            model=model,
            body=ctx.body,
            policy=self._policy_json(ctx.guard.policy if ctx.guard is not None else None),
            prompt=f"{ctx.prompt.id}@{ctx.prompt.version}" if ctx.prompt is not None else "",
            text_completion=ctx.text_completion,
            canary=ctx.planted_prompt.canary if ctx.planted_prompt is not None else None,
        )
        return self.cache.plan(material, control=cache_control(ctx.headers.get("cache-control")), layers=_layers(ctx))

    @staticmethod
    def _answer(ctx: RequestContext, state: CacheState, body: dict[str, Any]) -> None:
        body["id"] = "chatcmpl-" + ctx.request_id.removeprefix("req_")
        body["created"] = int(time.time())
        ctx.response = ChatResponse(body=body, usage=Usage.from_openai(body.get("usage")))
        ctx.trace.alias = state.model  # metrics and the ledger name the model; no deployment answered

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        state = ctx.cache
        if state is not None and state.store and state.outcome in ("miss", "bypass") and _output_untouched(ctx):
            await self.cache.put(state, response.body)
        return response

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        state = ctx.cache
        if state is None or not state.store or state.outcome not in ("miss", "bypass"):
            return chunks
        return self._keep(ctx, state, chunks)

    async def _keep(self, ctx: RequestContext, state: CacheState, chunks: Chunks) -> Chunks:
        answer = StreamAnswer()
        try:
            async for chunk in chunks:
                answer.add(chunk)
                yield chunk
        finally:
            await chunks.aclose()
        # Reached only when the stream ended normally (an error or a client that went away raises).
        body = answer.body()
        if body is not None and _output_untouched(ctx):
            await self.cache.put(state, body)

    async def on_complete(self, ctx: RequestContext) -> None:
        state = ctx.cache
        if state is not None and ctx.error is not None:
            ctx.error.headers.setdefault(HEADER, state.outcome)
