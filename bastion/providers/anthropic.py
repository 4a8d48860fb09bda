"""Anthropic's native Messages API (api.anthropic.com or any compatible base URL).

Bastion speaks the OpenAI shape inside; ``anthropic_translate`` converts each request out and
each answer and stream event back, so the router and the dialects never see Anthropic's format.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from bastion.errors import UpstreamError
from bastion.providers.anthropic_translate import (
    AnthropicStreamTranslator,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Usage
from bastion.providers.http import TRANSPORT_ERRORS, iter_sse_data, transport_error
from bastion.providers.http_provider import HTTPProvider

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
#: What Anthropic's counting endpoint takes of a Messages request (it refuses the rest).
_COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


class AnthropicProvider(HTTPProvider):
    default_api_base: ClassVar[str] = ANTHROPIC_API_BASE
    key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"

    def normalise_api_base(self, base: str) -> str:
        # Accept a base written with the version path, as the OpenAI-style configs often are.
        return base.removesuffix("/v1")

    def fixed_headers(self) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION}

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def _payload(self, request: ChatRequest, stream: bool) -> bytes:
        body = openai_to_anthropic_request(request.body, self.deployment.model)
        if stream:
            body["stream"] = True
        return orjson.dumps(body)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.within_total_timeout(self._chat(request))

    async def _chat(self, request: ChatRequest) -> ChatResponse:
        # Translate first: a request Anthropic cannot express fails before any network work.
        payload = self._payload(request, stream=False)
        data = await self.read_json(await self.post(MESSAGES_PATH, payload))
        if data.get("type") == "error":
            # Some compatible servers report errors with a 200 status.
            raise self.errors.reported(data, mid_stream=False)
        body = anthropic_to_openai_response(data, self.deployment.model, self.label)
        return ChatResponse(body=body, usage=Usage.from_openai(body["usage"]))

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Anthropic's own count (``/v1/messages/count_tokens``): exact for its tokenizer."""
        body = openai_to_anthropic_request(request.body, self.deployment.model)
        payload = orjson.dumps({k: v for k, v in body.items() if k in _COUNTED_FIELDS})
        data = await self.within_total_timeout(self.read_json(await self.post(COUNT_TOKENS_PATH, payload)))
        tokens = data.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise UpstreamError(f"{self.label} answered the token count without input_tokens")
        return tokens

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        payload = self._payload(request, stream=True)
        response = await self.post(MESSAGES_PATH, payload)
        translator = AnthropicStreamTranslator(self.deployment.model, self.label, self.errors)
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
            self.close_stream(response, finished=translator.done)
        if not translator.done:
            raise UpstreamError(f"{self.label} ended the stream early")
