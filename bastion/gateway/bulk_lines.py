"""Bulk items through the pipeline: the gateway's ``BulkRunner``.

``prepare`` does once per run what the prompt stage does per request: resolve the owner again
(a key revoked since stops the run), check the session (404 if no longer the owner's, 410 once
ended), decrypt the session's pinned vault version, and plant ONE canary in its system prompt.
Every item then sends the same system message, byte for byte, so the provider caches it: for a
model with an Anthropic deployment it is marked ``cache_control: {"type": "ephemeral"}`` (the
5-minute cache; the first item writes it, the rest read it), OpenAI caches the stable prefix on
its own (and its provider strips the marker).

Each item is a chat request through the whole pipeline as the owner: auth, guard, limits,
budgets, cache, cost and ledger apply. The context carries what the prompt stage would have
left (``ctx.prompt`` for the ledger's prompt id and version and the version's guard policy,
``ctx.planted_prompt`` for the output guard's leak detection, ``ctx.ledger_messages`` so the
ledger records the item's message and never the vault text), ``session_id`` and the bulk's ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Principal
from bastion.bulk.model import BulkItem, BulkPayload, ItemOutcome
from bastion.config.work_settings import BulkSettings
from bastion.dialects.errors import openai_error
from bastion.errors import BastionError, NotFound, RateLimited
from bastion.gateway.context import RequestContext, Timing, new_request_id
from bastion.gateway.pipeline import Pipeline
from bastion.guard.leak import make_canary, plant_canary
from bastion.guard.state import PlantedPrompt
from bastion.providers.base import ChatResponse, Usage
from bastion.routing.router import Router
from bastion.sessions.service import SessionService
from bastion.vault.model import PromptInUse
from bastion.vault.render import check_variables, render

log = structlog.get_logger("bastion.bulk")

USER_AGENT = "bastion-bulk"
#: Anthropic's 5-minute cache breakpoint.
EPHEMERAL = {"type": "ephemeral"}


@dataclass(slots=True)
class PreparedBulk:
    bulk_id: str
    payload: BulkPayload
    principal: Principal
    resolved_at: float
    agent_id: str
    model: str
    #: The system message every item sends (the vault prompt with the run's canary).
    system: dict[str, Any]
    #: The version's user template rendered with the session context (sent after the message).
    template: str | None
    params: dict[str, Any]
    prompt: PromptInUse
    planted: PlantedPrompt


class PipelineBulk:
    def __init__(
        self,
        pipeline: Pipeline,
        authenticator: Authenticator,
        sessions: SessionService,
        router: Router,
        settings: BulkSettings,
        *,
        principal_ttl_s: float = 60.0,
    ) -> None:
        self.pipeline = pipeline
        self.authenticator = authenticator
        self.sessions = sessions
        self.router = router
        self.settings = settings
        #: How long the resolved owner is reused: a revocation reaches a running bulk within it.
        self.principal_ttl_s = principal_ttl_s

    async def prepare(self, bulk_id: str, payload: BulkPayload) -> PreparedBulk:
        principal = await self.authenticator.principal_of(payload.identity)
        # Accepted while active: a run that starts after the session expired still runs; one the
        # owner ended does not.
        row, _plan = await self.sessions.bulk_target(principal, payload.agent_id, check_expiry=False)
        resolved, _ = await self.sessions.vault.resolve(principal.tenant_id, row.prompt_id, version=row.prompt_version)
        model = row.model or resolved.model
        if model is None:
            raise NotFound(f"The prompt {row.prompt_id!r} names no model.", param="model")
        secret = resolved.secret
        template = secret.compiled_template()
        canary = make_canary()  # one per run: a per-item canary would break the shared prefix
        text = plant_canary(secret.system, canary)
        system: dict[str, Any] = {"role": "system", "content": text}
        if self.settings.prompt_caching and self._has_anthropic(model):
            system["content"] = [{"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}]
        metadata = resolved.metadata
        return PreparedBulk(
            bulk_id=bulk_id,
            payload=payload,
            principal=principal,
            resolved_at=time.monotonic(),
            agent_id=row.agent_id,
            model=model,
            system=system,
            template=render(template, check_variables(row.context)) if template is not None else None,
            params=dict(resolved.params),
            prompt=PromptInUse(
                row.prompt_id, resolved.version, row.prompt_label, metadata.get("guard") or None, metadata.get("cache")
            ),
            planted=PlantedPrompt(secret.system, canary),
        )

    def _has_anthropic(self, model: str) -> bool:
        group = self.router.groups.get(model)
        return group is not None and any(t.deployment.provider == "anthropic" for t in group.targets)

    async def run(self, prepared: Any, item: BulkItem) -> ItemOutcome:
        assert isinstance(prepared, PreparedBulk)
        request_id = new_request_id()
        try:
            ctx = self._context(await self._principal(prepared), prepared, item, request_id)
            result = await self.pipeline.chat(ctx)
            assert isinstance(result, ChatResponse)  # not streamed
        except BastionError as exc:
            retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
            return ItemOutcome(exc.status, request_id, error=openai_error(exc)["error"], retry_after_s=retry_after)
        except Exception:
            log.exception("bulk_item_failed", bulk_id=prepared.bulk_id, item_id=item.id)
            return ItemOutcome(500, request_id, error=openai_error(BastionError("internal error"))["error"])
        return ItemOutcome(200, request_id, _answer(result), _usage(ctx.usage), ctx.cost_usd)

    async def _principal(self, prepared: PreparedBulk) -> Principal:
        if time.monotonic() - prepared.resolved_at >= self.principal_ttl_s:
            prepared.principal = await self.authenticator.principal_of(prepared.payload.identity)
            prepared.resolved_at = time.monotonic()
        return prepared.principal

    def _context(self, principal: Principal, prepared: PreparedBulk, item: BulkItem, request_id: str) -> RequestContext:
        message = {"role": "user", "content": item.message}
        messages = [_fresh(prepared.system), message]
        if prepared.template is not None:
            messages.append({"role": "user", "content": prepared.template})
        body: dict[str, Any] = {**prepared.params, "model": prepared.model, "messages": messages}
        ctx = RequestContext(
            request_id=request_id,
            dialect="openai",
            endpoint="chat",
            body=body,
            model=prepared.model,
            timing=Timing(),
            user_agent=USER_AGENT,
        )
        ctx.principal = principal
        ctx.prompt = prepared.prompt
        ctx.planted_prompt = prepared.planted
        ctx.ledger_messages = [message]  # what the client sent: never the vault text
        ctx.session_id = prepared.agent_id
        ctx.ledger_extra = {"bulk_id": prepared.bulk_id, "bulk_item": item.id, "operation": item.operation}
        return ctx


def _fresh(system: dict[str, Any]) -> dict[str, Any]:
    """A copy of the shared system message for one item: stages may change an item's messages."""
    content = system["content"]
    return {**system, "content": [dict(part) for part in content] if isinstance(content, list) else content}


def _answer(response: ChatResponse) -> str:
    choices = response.body.get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else ""


def _usage(usage: Usage | None) -> dict[str, int]:
    """An item's tokens; ``input_tokens`` includes the cache's writes and reads."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }
