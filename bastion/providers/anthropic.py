"""Anthropic's native Messages API (api.anthropic.com or any compatible base URL).

Bastion speaks the OpenAI shape inside; ``anthropic_translate`` converts each request out and
each answer and stream event back, so the router and the dialects never see Anthropic's format.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

from bastion.config.secret_refs import resolve_secret
from bastion.errors import UpstreamError
from bastion.providers.anthropic_translate import (
    AnthropicStreamTranslator,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Deployment, Provider, Usage
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

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        settings = deployment.settings
        base = (settings.api_base or ANTHROPIC_API_BASE).rstrip("/")
        # Accept a base written with the version path, as the OpenAI-style configs often are.
        self.api_base = base.removesuffix("/v1")
        key = resolve_secret(settings.api_key, f"deployment {deployment.id}.api_key")
        if key is None and self.api_base == ANTHROPIC_API_BASE:
            # The environment key is Anthropic's: never send it to some other configured host.
            key = os.environ.get("ANTHROPIC_API_KEY")
        self.headers: dict[str, str] = {
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **settings.headers,
        }
        if key:
            self.headers["x-api-key"] = key
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
        body = openai_to_anthropic_request(request.body, self.deployment.model)
        if stream:
            body["stream"] = True
        return orjson.dumps(body)

    async def _post(self, payload: bytes) -> UpstreamResponse:
        return await post_checked(self.client, "/v1/messages", payload, self.label)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        total = self.deployment.timeouts.total_s
        coro = self._chat(request)
        return await (asyncio.wait_for(coro, total) if total else coro)

    async def _chat(self, request: ChatRequest) -> ChatResponse:
        # Translate first: a request Anthropic cannot express fails before any network work.
        payload = self._payload(request, stream=False)
        response = await self._post(payload)
        data = parse_json_body(await read_body(response, self.label), self.label)
        if data.get("type") == "error":
            # Some compatible servers report errors with a 200 status.
            raise UpstreamError(f"{self.label} reported an error: {_error_message(data)}", retryable=False)
        body = anthropic_to_openai_response(data, self.deployment.model, self.label)
        return ChatResponse(body=body, usage=Usage.from_openai(body["usage"]))

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        payload = self._payload(request, stream=True)
        response = await self._post(payload)
        translator = AnthropicStreamTranslator(self.deployment.model, self.label)
        try:
            async for _event, data in iter_sse_data(response):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(f"{self.label} sent a malformed stream event") from None
                if not isinstance(event, dict):
                    raise UpstreamError(f"{self.label} sent a stream event that is not an object")
                # The payload's own "type" names the event; the SSE "event:" line repeats it.
                for chunk in translator.feed(event):
                    yield chunk
                if translator.done:
                    break
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.label) from None
        finally:
            if translator.done:
                response.release()
            else:
                # Closing (not releasing) drops the connection, which cancels the upstream work.
                response.close()
        if not translator.done:
            raise UpstreamError(f"{self.label} ended the stream early")


def _error_message(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return "unknown error"
