"""Any OpenAI-compatible chat-completions endpoint: OpenAI, Groq, vLLM, Ollama, llama.cpp server."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

from bastion.config.secret_refs import resolve_secret
from bastion.errors import UpstreamError
from bastion.providers.anthropic_extras import strip_cache_control
from bastion.providers.base import (
    ChatRequest,
    ChatResponse,
    ChunkStream,
    Deployment,
    EmbeddingResponse,
    Provider,
    Usage,
)
from bastion.providers.http import (
    TRANSPORT_ERRORS,
    UpstreamClient,
    UpstreamResponse,
    iter_sse_data,
    make_client,
    parse_json_body,
    post_checked,
    read_body,
    transport_error,
)

OPENAI_API_BASE = "https://api.openai.com/v1"


class OpenAIProvider(Provider):
    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        settings = deployment.settings
        self.api_base = (settings.api_base or OPENAI_API_BASE).rstrip("/")
        key = resolve_secret(settings.api_key, f"deployment {deployment.id}.api_key")
        if key is None and self.api_base == OPENAI_API_BASE:
            key = os.environ.get("OPENAI_API_KEY")
        self.headers: dict[str, str] = {"content-type": "application/json", **settings.headers}
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        self.label = f"upstream {deployment.id}"
        self._client: UpstreamClient | None = None

    async def start(self) -> None:
        limit = self.deployment.settings.max_concurrency or 0
        self._client = make_client(self.api_base, self.headers, self.deployment.timeouts, limit=limit)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            raise RuntimeError("provider used before start()")
        return self._client

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

    async def _post(self, path: str, payload: bytes) -> UpstreamResponse:
        return await post_checked(self.client, path, payload, self.label)

    async def _read_json(self, response: UpstreamResponse) -> dict[str, Any]:
        return parse_json_body(await read_body(response, self.label), self.label)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        total = self.deployment.timeouts.total_s
        coro = self._chat(request)
        return await (asyncio.wait_for(coro, total) if total else coro)

    async def _chat(self, request: ChatRequest) -> ChatResponse:
        response = await self._post("/chat/completions", self._payload(request, stream=False))
        data = await self._read_json(response)
        if not isinstance(data.get("choices"), list):
            raise UpstreamError(f"{self.label} sent a response without choices")
        return ChatResponse(body=data, usage=Usage.from_openai(data.get("usage")))

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        response = await self._post("/chat/completions", self._payload(request, stream=True))
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
                    raise UpstreamError(f"{self.label} reported an error mid-stream", retryable=False)
                yield chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.label) from None
        finally:
            if done:
                response.release()
            else:
                # Closing (not releasing) drops the connection, which cancels the upstream work.
                response.close()
        if not done:
            raise UpstreamError(f"{self.label} ended the stream early")

    async def embed(self, inputs: list[str], request_id: str, dimensions: int | None = None) -> EmbeddingResponse:
        body: dict[str, Any] = {"model": self.deployment.model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        payload = orjson.dumps(body)
        response = await self._post("/embeddings", payload)
        data = await self._read_json(response)
        items = data.get("data")
        if not isinstance(items, list):
            raise UpstreamError(f"{self.label} sent an embeddings response without data")
        try:
            ordered = sorted(items, key=lambda item: item["index"])
            vectors = [list(map(float, item["embedding"])) for item in ordered]
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"{self.label} sent malformed embeddings") from None
        return EmbeddingResponse(vectors=vectors, usage=Usage.from_openai(data.get("usage")))
