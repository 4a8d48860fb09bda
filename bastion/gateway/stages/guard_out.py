"""Guard-out stage: scans the model's answer for a system-prompt leak, PII and secrets.

It sits after the usage stage in the stage list, so it runs first on a complete answer and wraps the
upstream stream innermost: usage, the ledger and the sessions see only what the guard let through.
What it does to an answer (withhold, redact, flag) is ``bastion/guard/chat_output.py``'s.
"""

from __future__ import annotations

from typing import Any

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.guard import offload
from bastion.guard.chat_output import GuardedStream, guard_choice
from bastion.guard.engine import OutputGuard
from bastion.guard.models import GuardResult
from bastion.guard.service import GuardService, count_verdicts
from bastion.guard.state import GuardState, combine
from bastion.providers.base import ChatResponse, Usage
from bastion.providers.openai_responses import NATIVE_EVENT
from bastion.usage.estimate import estimate_usage


class GuardOutStage(Stage):
    name = "guard_out"

    def __init__(self, guard: GuardService) -> None:
        self.guard = guard

    def _prepare(self, ctx: RequestContext) -> tuple[GuardState, OutputGuard] | None:
        if ctx.endpoint != "chat":
            return None
        state = ctx.guard
        if state is None:  # a pipeline without the input stage: resolve the policy here
            prompt_policy = ctx.prompt.guard_policy if ctx.prompt is not None else None
            state = ctx.guard = GuardState(self.guard.policy(ctx.principal, prompt_policy))
        guard = self.guard.output_guard(state.policy, ctx.planted_prompt)
        return None if guard is None else (state, guard)

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        prepared = self._prepare(ctx)
        if prepared is None:
            return response
        state, guard = prepared
        results: list[GuardResult] = []
        choices = [
            c for c in response.body.get("choices") or () if isinstance(c, dict) and isinstance(c.get("message"), dict)
        ]

        def scan_choices() -> None:
            for choice in choices:
                guard_choice(guard, choice, results)

        # A large answer is scanned in a guard worker thread, within the policy's scan budget.
        await offload.run_scan(scan_choices, chars=offload.text_chars(choices), budget_ms=state.policy.scan_budget_ms)
        state.output = combine(results)
        count_verdicts("output", state.output)
        return response

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        prepared = self._prepare(ctx)
        if prepared is None:
            return chunks
        if ctx.passthrough is not None:
            return self._unless_passed_through(ctx, chunks, prepared)
        return self._guarded(ctx, chunks, prepared)

    async def _unless_passed_through(
        self, ctx: RequestContext, chunks: Chunks, prepared: tuple[GuardState, OutputGuard]
    ) -> Chunks:
        """A Responses stream relayed from a native upstream passes unscanned (its events are sent
        as the upstream wrote them: held-back or rewritten text would not match them); a request
        the deployment translated is guarded like any chat stream. The stream is primed, so
        looking at its first chunk costs no wait."""
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            return
        rest = _prepended(first, chunks)
        stream = rest if NATIVE_EVENT in first else self._guarded(ctx, rest, prepared)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def _guarded(self, ctx: RequestContext, chunks: Chunks, prepared: tuple[GuardState, OutputGuard]) -> Chunks:
        state, guard = prepared

        def estimate(answer: list[str]) -> Usage:
            return estimate_usage(ctx.body, answer)

        def mark_estimated() -> None:
            # The usage stage read the last chunk's usage as a provider report; it is our estimate.
            if ctx.usage is not None:
                ctx.usage.estimated = True

        stream = GuardedStream(
            state,
            guard,
            chunks,
            model=ctx.model,
            estimate_usage=estimate,
            usage_was_estimated=mark_estimated,
            batch_chars=self.guard.stream_batch_chars,
        )
        return stream.run()


async def _prepended(first: dict[str, Any], chunks: Chunks) -> Chunks:
    try:
        yield first
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()
