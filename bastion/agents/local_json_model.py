"""A :class:`~bastion.agents.planners.JsonModel` over the embedded chat model.

The answer is generated under a llama.cpp grammar made from the JSON Schema, so the text follows
the schema token by token (it can still be cut short by ``max_tokens``; the planner modes treat a
cut answer as invalid). Usage is the prompt and answer tokens; the embedded model costs nothing.
Greedy decoding by default, so the same request gets the same answer. ``max_tokens_cap`` bounds
every answer below what the caller asks (a small CPU model is slow; a cut answer only means the
planner's defaults or fallback are used)."""

from __future__ import annotations

from typing import Any, Protocol

from bastion.agents.budget import Usage
from bastion.local.chat_engine import GenerationRequest, GenerationResult


class Completer(Protocol):
    """What is used of :class:`bastion.local.chat_engine.ChatEngine`."""

    async def complete(self, request: GenerationRequest) -> GenerationResult: ...


class LocalJsonModel:
    def __init__(self, engine: Completer, *, temperature: float = 0.0, max_tokens_cap: int | None = None) -> None:
        self.engine = engine
        self.temperature = temperature
        self.max_tokens_cap = max_tokens_cap

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]:
        request = GenerationRequest(
            [{"role": str(m.get("role", "user")), "content": _text(m.get("content"))} for m in messages],
            max_tokens=min(max_tokens, self.max_tokens_cap or max_tokens),
            temperature=self.temperature,
            seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        )
        result = await self.engine.complete(request)
        return result.text, Usage(tokens=result.prompt_tokens + result.completion_tokens)


def _text(content: Any) -> str:
    """A message's content as plain text (OpenAI-style content parts are joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
