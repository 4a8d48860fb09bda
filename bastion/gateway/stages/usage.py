"""Usage stage: token counts for every answer, from the provider or, failing that, our tokenizer.

It also collects the answer's text and finish reason from streams, which later stages (guard,
ledger) read from the context.
"""

from __future__ import annotations

import time
from typing import Any

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.providers.base import ChatResponse, Usage
from bastion.usage.estimate import estimate_usage


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    parts = [content] if isinstance(content, str) else []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(str(function.get("name") or ""))
        parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


class UsageStage(Stage):
    name = "usage"

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        choices = [choice for choice in response.body.get("choices") or () if isinstance(choice, dict)]
        for choice in choices:  # n > 1: every choice's text is answer text (and usage)
            ctx.output_text.append(_message_text(choice.get("message") or {}))
        if choices:
            ctx.finish_reason = choices[0].get("finish_reason")
        if response.usage is None:
            response.usage = estimate_usage(ctx.body, ctx.output_text)
            response.body["usage"] = response.usage.to_openai()
        ctx.usage = response.usage
        return response

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        return self._watch(ctx, chunks)

    async def _watch(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        last: dict[str, Any] | None = None
        try:
            async for chunk in chunks:
                last = chunk
                self._observe(ctx, chunk)
                yield chunk
        finally:
            await chunks.aclose()
        if ctx.usage is None and last is not None:
            ctx.usage = estimate_usage(ctx.body, ctx.output_text)
            yield {
                "id": last.get("id"),
                "object": "chat.completion.chunk",
                "created": last.get("created") or int(time.time()),
                "model": last.get("model") or ctx.model,
                "choices": [],
                "usage": ctx.usage.to_openai(),
            }

    @staticmethod
    def _observe(ctx: RequestContext, chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            if delta:
                text = _message_text(delta)
                if text:
                    ctx.output_text.append(text)
            if choice.get("finish_reason"):
                ctx.finish_reason = choice["finish_reason"]
        usage = chunk.get("usage")
        if usage:
            ctx.usage = Usage.from_openai(usage)
