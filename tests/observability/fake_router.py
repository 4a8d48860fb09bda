"""A router that answers as an OpenAI or an Anthropic deployment would (no network, no port).
It imports nothing of OpenTelemetry: the test that the export stays unloaded uses it too."""

from __future__ import annotations

from typing import Any

from bastion.errors import BastionError
from bastion.gateway.stage import Chunks
from bastion.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Usage
from bastion.routing.trace import RouteTrace

#: The deployments the fake router answers for: alias -> (deployment id, upstream model).
DEPLOYMENTS = {"gpt-4o": ("gpt4o-east", "gpt-4o-2024-08-06"), "claude": ("claude-main", "claude-sonnet-4-5")}


class FakeRouter:
    """Answers as the alias's deployment: a completion, a stream, or an upstream failure."""

    def __init__(self) -> None:
        self.fail: BastionError | None = None
        self.answer = "Hello there."
        self.requests: list[dict[str, Any]] = []

    def _route(self, model: str, trace: RouteTrace) -> str:
        deployment, upstream_model = DEPLOYMENTS[model]
        trace.alias, trace.deployment, trace.upstream_model = model, deployment, upstream_model
        return upstream_model

    async def chat(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChatResponse:
        upstream_model = self._route(model, trace)
        self.requests.append(request.body)
        if self.fail is not None:
            raise self.fail
        usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        body: dict[str, Any] = {
            "id": "chatcmpl-fake-1",
            "object": "chat.completion",
            "created": 1,
            "model": upstream_model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.answer}, "finish_reason": "stop"}
            ],
            "usage": usage,
        }
        return ChatResponse(body=body, usage=Usage.from_openai(usage))

    async def stream(self, request: ChatRequest, model: str, trace: RouteTrace) -> Chunks:
        upstream_model = self._route(model, trace)
        self.requests.append(request.body)
        words = self.answer.split(" ")

        async def chunks() -> Chunks:
            for i, word in enumerate(words):
                yield {
                    "id": "chatcmpl-fake-stream",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": upstream_model,
                    "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word}}],
                }
            yield {
                "id": "chatcmpl-fake-stream",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": upstream_model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }

        return chunks()

    async def embed(
        self, inputs: list[str], model: str, request_id: str, trace: RouteTrace, dimensions: int | None = None
    ) -> EmbeddingResponse:
        raise NotImplementedError
