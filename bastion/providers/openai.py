"""Any OpenAI-compatible chat-completions endpoint: OpenAI, Groq, vLLM, Ollama, llama.cpp server."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from bastion.errors import UpstreamError
from bastion.providers import openai_responses
from bastion.providers.anthropic_extras import strip_cache_control
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse, Usage
from bastion.providers.http import TRANSPORT_ERRORS, iter_sse_data, transport_error
from bastion.providers.http_provider import HTTPProvider

OPENAI_API_BASE = "https://api.openai.com/v1"


class OpenAIProvider(HTTPProvider):
    default_api_base: ClassVar[str] = OPENAI_API_BASE
    key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    native_n: ClassVar[bool] = True

    def _native(self, request: ChatRequest) -> bool:
        """Whether ``request`` goes to the upstream's own ``/responses`` (``responses: native``)."""
        return request.passthrough is not None and self.deployment.settings.responses == "native"

    def _payload(self, request: ChatRequest, stream: bool) -> bytes:
        # Anthropic-only fields (cache_control, ...) ride in the internal shape; OpenAI rejects them.
        body = dict(strip_cache_control(request.body))
        body["model"] = self.deployment.model
        if stream:
            body["stream"] = True
            # Always ask for usage so the ledger is exact; the HTTP layer strips it if the client
            # did not ask for it.
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return orjson.dumps(body)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if self._native(request):
            return await self.within_total_timeout(openai_responses.create(self, request))
        return await self.within_total_timeout(self._chat(request))

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """A Responses request's input as a native deployment's upstream counts it
        (``/responses/input_tokens``); None otherwise (OpenAI has no chat-completions counter)."""
        if self._native(request):
            return await openai_responses.count_input_tokens(self, request)
        return None

    async def _chat(self, request: ChatRequest) -> ChatResponse:
        response = await self.post("/chat/completions", self._payload(request, stream=False))
        data = await self.read_json(response)
        if not isinstance(data.get("choices"), list):
            if "error" in data:
                # An error object with a 200 status: retried, as a body without choices always was.
                raise self.errors.reported(data, mid_stream=False, retryable=True)
            raise UpstreamError(f"{self.label} sent a response without choices")
        return ChatResponse(body=data, usage=Usage.from_openai(data.get("usage")))

    def stream_chat(self, request: ChatRequest) -> ChunkStream:
        if self._native(request):
            return openai_responses.stream(self, request)
        return self._stream_chat(request)

    async def _stream_chat(self, request: ChatRequest) -> ChunkStream:
        response = await self.post("/chat/completions", self._payload(request, stream=True))
        done = False
        try:
            async for _event, data in iter_sse_data(response):
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(f"{self.label} sent a malformed stream chunk") from None
                if not isinstance(chunk, dict):
                    raise UpstreamError(f"{self.label} sent a stream chunk that is not an object")
                if "error" in chunk and "choices" not in chunk:
                    raise self.errors.reported(chunk, mid_stream=True)
                yield chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.label) from None
        finally:
            self.close_stream(response, finished=done)
        if not done:
            raise UpstreamError(f"{self.label} ended the stream early")

    async def embed(self, inputs: list[str], request_id: str, dimensions: int | None = None) -> EmbeddingResponse:
        body: dict[str, Any] = {"model": self.deployment.model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        response = await self.post("/embeddings", orjson.dumps(body))
        data = await self.read_json(response)
        items = data.get("data")
        if not isinstance(items, list):
            raise UpstreamError(f"{self.label} sent an embeddings response without data")
        try:
            ordered = sorted(items, key=lambda item: item["index"])
            vectors = [list(map(float, item["embedding"])) for item in ordered]
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"{self.label} sent malformed embeddings") from None
        return EmbeddingResponse(vectors=vectors, usage=Usage.from_openai(data.get("usage")))
