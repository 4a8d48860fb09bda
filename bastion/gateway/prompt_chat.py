"""Chat calls the gateway makes on a caller's behalf (the analyzer's prompt rewrite): the same
pipeline as a request to ``/v1/chat/completions`` (auth as the caller, guard, limits and budgets,
cost, ledger), without HTTP.

The messages carry a vault prompt's text, which the caller may not be allowed to read, so the
ledger records the call with metadata only (no messages, no answer), tagged with its purpose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bastion.auth.principal import Principal
from bastion.errors import UpstreamError
from bastion.gateway.internal_chat import internal_chat_context
from bastion.gateway.pipeline import Pipeline
from bastion.ledger.record import METADATA
from bastion.providers.base import ChatResponse

USER_AGENT = "bastion-analyzer"


class PipelineChat:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(
        self, principal: Principal, model: str, messages: list[dict[str, Any]], purpose: dict[str, Any]
    ) -> str:
        body: dict[str, Any] = {"model": model, "messages": messages}
        ctx = internal_chat_context(body, USER_AGENT)
        settings = {**principal.tenant_settings, "ledger_mode": METADATA}
        ctx.principal = dataclasses.replace(principal, tenant_settings=settings)
        ctx.ledger_extra = dict(purpose)
        result = await self.pipeline.chat(ctx)
        assert isinstance(result, ChatResponse)  # not streamed
        try:
            content = result.body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise UpstreamError("The model returned no text.", retryable=False)
        return content
