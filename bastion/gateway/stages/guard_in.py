"""Guard-in stage: scans what the client sent before anything is spent on it.

It runs after auth (the policy depends on tenant, user and key) and after the prompt stage (the
vault prompt's own policy, and its system prompt already in ``ctx.body``), and before limits and
routing, so a blocked request costs no budget, no rate-limit slot and no upstream call.

Only user, tool and function content is scanned (``GuardPolicy.scan_roles``): system and developer
messages are the operator's (the vault prompt) or the client's own instructions, and scanning the
vault prompt would flag the gateway's own canary and cost time on every request. A conversation's
earlier messages come back on every turn; their scans are remembered (``MemoInputGuard``), so only
new content costs a scan.

* ``block`` -> ``ContentBlocked``: HTTP 400, code ``content_blocked``, the guard's
  ``BLOCKED_MESSAGE`` (the dialect renderers turn it into OpenAI's or Anthropic's error shape).
* ``redact`` -> the upstream gets redacted copies of the messages, and so does the ledger (both the
  body and the prompt stage's ``ledger_messages``).
* ``flag`` -> forwarded unchanged; the verdict marks the ledger row.

With ``guard.canary_for_client_prompts`` a canary is planted in the client's own system prompt
(requests without a vault prompt), so the output guard can catch that prompt leaking as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.gateway.stages.guard import ContentBlocked, GuardState, MemoInputGuard, count_verdicts, guard_services
from bastion.gateway.stages.prompt import PromptSecretNote
from bastion.guard import make_canary, offload, plant_canary

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})


class GuardInStage(Stage):
    name = "guard_in"

    def __init__(self, gateway: Gateway) -> None:
        self.services = guard_services(gateway)
        # Canaries for client prompts are derived from the prompt text with this key, so the same
        # system prompt gets the same canary and provider-side prompt caching keeps working.
        self._canary_key = os.urandom(32)
        self._warm_up: asyncio.Future[None] | None = None

    async def start(self) -> None:
        if self.services.enabled:
            # The detectors compile a few hundred patterns (about a second of CPU) when first used:
            # build them now, beside start-up, instead of inside the first guarded request.
            self._warm_up = asyncio.get_running_loop().run_in_executor(None, self._build_default_guard)

    async def stop(self) -> None:
        if self._warm_up is not None:
            with contextlib.suppress(Exception):  # a failed build fails the first request instead, visibly
                await self._warm_up

    def _build_default_guard(self) -> None:
        policy = self.services.resolver.resolve()
        MemoInputGuard.for_policy(policy).scan_messages([{"role": "user", "content": "Warm-up: hello."}])

    async def on_request(self, ctx: RequestContext) -> None:
        services = self.services
        if not services.enabled or ctx.endpoint != "chat":
            return
        state = GuardState(services.resolver.resolve(ctx.principal, ctx.annotations.get("prompt_guard")))
        ctx.annotations["guard"] = state
        messages = ctx.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return  # nothing to scan; the dialect validators reject such bodies anyway
        result = await offload.scan_messages(MemoInputGuard.for_policy(state.policy), messages)
        state.input = result
        count_verdicts("input", result)
        if result.blocked:
            raise ContentBlocked()
        if result.action == "redact" and result.messages is not None:
            self._use_redacted(ctx, messages, result.messages)
        if services.canary_for_client_prompts and "prompt_secret" not in ctx.annotations:
            self._plant_client_canary(ctx)

    @staticmethod
    def _use_redacted(ctx: RequestContext, original: list[Any], redacted: list[dict[str, Any]]) -> None:
        ctx.body["messages"] = redacted
        ledger = ctx.annotations.get("ledger_messages")
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
            ctx.annotations["ledger_messages"] = [changed.get(id(message), message) for message in ledger]

    def _plant_client_canary(self, ctx: RequestContext) -> None:
        """Plant a canary in the client's first system/developer message and hand the prompt to the
        output guard exactly like the prompt stage does for vault prompts."""
        messages: list[Any] = ctx.body["messages"]
        texts: list[str] = []
        first: int | None = None
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in _INSTRUCTION_ROLES:
                continue
            text = _content_text(message.get("content"))
            if text:
                texts.append(text)
                first = index if first is None else first
        if first is None:
            return
        system_prompt = "\n".join(texts)
        canary = make_canary(self._canary_key, system_prompt)
        planted = _planted(messages[first], canary)
        if planted is None:
            return
        # The ledger keeps the client's own view, without the canary.
        ctx.annotations.setdefault("ledger_messages", messages)
        ctx.body["messages"] = [*messages[:first], planted, *messages[first + 1 :]]
        ctx.annotations["prompt_secret"] = PromptSecretNote(system_prompt=system_prompt, canary=canary)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str)
        )
    return ""


def _planted(message: Mapping[str, Any], canary: str) -> dict[str, Any] | None:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": plant_canary(content, canary)}
    if isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
                parts = list(content)
                parts[index] = {**part, "text": plant_canary(part["text"], canary)}
                return {**message, "content": parts}
    return None
