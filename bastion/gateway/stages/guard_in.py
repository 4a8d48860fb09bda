"""Guard-in stage: scans what the client sent before anything is spent on it.

It runs after auth (the policy depends on tenant, user and key) and after the prompt stage (the
vault prompt's own policy, and its system prompt already in ``ctx.body``), and before limits and
routing, so a blocked request costs no budget, no rate-limit slot and no upstream call.

Only user, tool and function content is scanned (``GuardPolicy.scan_roles``): system and developer
messages are the operator's (the vault prompt) or the client's own instructions, and scanning the
vault prompt would flag the gateway's own canary and cost time on every request. A conversation's
earlier messages come back on every turn; their scans are remembered (``MemoInputGuard``), so only
new content costs a scan.

* ``block`` -> ``ContentBlocked``: HTTP 400, code ``content_blocked``, the policy's
  ``blocked_message`` or the guard's ``BLOCKED_MESSAGE`` (the dialect renderers turn it into
  OpenAI's or Anthropic's error shape).
  With ``block_response: refusal`` the stage answers instead: a 200 ``chat.completion`` whose text
  is that message and whose ``finish_reason`` is ``content_filter`` (streamed when asked), and
  nothing goes upstream.
* ``redact`` -> the upstream gets redacted copies of the messages, and so does the ledger (both the
  body and the prompt stage's ``ledger_messages``).
* ``flag`` -> forwarded unchanged; the verdict marks the ledger row.

With ``guard.canary_for_client_prompts`` a canary is planted in the client's own system prompt
(requests without a vault prompt), so the output guard can catch that prompt leaking as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.gateway.answers import refusal
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.guard.models import BLOCKED_MESSAGE
from bastion.guard.service import ContentBlocked, GuardService, count_verdicts
from bastion.guard.state import GuardState


class GuardInStage(Stage):
    name = "guard_in"

    def __init__(self, guard: GuardService) -> None:
        self.guard = guard

    async def on_request(self, ctx: RequestContext) -> None:
        guard = self.guard
        prompt_policy = ctx.prompt.guard_policy if ctx.prompt is not None else None
        state = ctx.guard = GuardState(guard.policy(ctx.principal, prompt_policy))
        if ctx.endpoint == "embeddings":
            await self._embedding_inputs(ctx, state)
            return
        messages = ctx.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return  # nothing to scan; the dialect validators reject such bodies anyway
        result = await guard.scan_input(state.policy, messages)
        result = state.input = await guard.deepen_injection(state.policy, result, messages)
        count_verdicts("input", result)
        if result.blocked:
            if state.policy.block_response == "refusal":
                # Answered here, with no upstream call: a 200 refusal, finish_reason content_filter.
                ctx.response = refusal(ctx.model, state.policy.blocked_message or BLOCKED_MESSAGE)
                return
            raise ContentBlocked(state.policy.blocked_message)
        if result.action == "redact" and result.messages is not None:
            _use_redacted(ctx, messages, result.messages)
        if guard.canary_for_client_prompts and ctx.planted_prompt is None:
            planted = guard.plant_client_canary(ctx.body["messages"])
            if planted is not None:
                # The ledger keeps the client's own view, without the canary.
                if ctx.ledger_messages is None:
                    ctx.ledger_messages = ctx.body["messages"]
                ctx.body["messages"], ctx.planted_prompt = planted
                ctx.body_rewritten()

    async def _embedding_inputs(self, ctx: RequestContext, state: GuardState) -> None:
        """Texts to embed are the caller's content like a user message: scanned, and blocked or
        redacted (what goes upstream and what the ledger keeps) by the same policy."""
        raw = ctx.body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
            return  # token arrays carry no text to scan (the endpoint refuses them anyway)
        as_messages = [{"role": "user", "content": text} for text in texts]
        result = await self.guard.scan_input(state.policy, as_messages)
        result = state.input = await self.guard.deepen_injection(state.policy, result, as_messages)
        count_verdicts("input", result)
        if result.blocked:
            raise ContentBlocked(state.policy.blocked_message)
        if result.action == "redact" and result.messages is not None:
            redacted = [str(message.get("content") or "") for message in result.messages]
            ctx.body["input"] = redacted[0] if isinstance(raw, str) else redacted


def _use_redacted(ctx: RequestContext, original: list[Any], redacted: list[dict[str, Any]]) -> None:
    ctx.body["messages"] = redacted
    ctx.body_rewritten()
    ledger = ctx.ledger_messages
    if ledger is None:
        return  # the ledger records the body's messages, which are the redacted ones now
    # The prompt stage's client view holds the very message objects it forwarded: swap in the
    # redacted copy of each message the guard changed, so the ledger never stores the original.
    changed = {
        id(before): after
        for before, after in zip(original, redacted, strict=True)
        if isinstance(before, Mapping) and after.get("content") is not before.get("content")
    }
    if changed:
        ctx.ledger_messages = [changed.get(id(message), message) for message in ledger]
