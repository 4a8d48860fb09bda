"""Batch lines through the pipeline: the gateway's ``LineRunner``.

A line is a live request in every way but its transport: the same validation as the endpoint,
the same stages (auth as the batch's owner, guard, limits, budgets, cache, ledger with the batch
and line ids), the same answer or error body. Only streaming is refused: a batch line has no
one to stream to.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Identity, Principal
from bastion.batches.lines import LineOutcome, LineRequest
from bastion.batches.model import CHAT_URL, EMBEDDINGS_URL
from bastion.dialects.anthropic import openai_response_to_anthropic, parse_anthropic_request
from bastion.dialects.errors import RENDERERS
from bastion.dialects.extension import FIELD, parse_extension
from bastion.dialects.openai import embeddings_body, shape_completion
from bastion.dialects.openai_schema import validate_chat_request, validate_embedding_request
from bastion.errors import BastionError, InvalidRequest, RateLimited
from bastion.gateway.context import Endpoint, RequestContext, Timing, new_request_id
from bastion.gateway.embedding_input import embedding_texts
from bastion.gateway.pipeline import Pipeline
from bastion.providers.base import ChatResponse

log = structlog.get_logger("bastion.batches")

USER_AGENT = "bastion-batch"


class PipelineLines:
    def __init__(self, pipeline: Pipeline, authenticator: Authenticator, principal_ttl_s: float = 60.0) -> None:
        self.pipeline = pipeline
        self.authenticator = authenticator
        #: How long a resolved owner is reused: a revocation reaches a running batch within it.
        self.principal_ttl_s = principal_ttl_s
        self._principals: dict[Identity, tuple[float, Principal | BastionError]] = {}

    async def run(self, line: LineRequest) -> LineOutcome:
        request_id = new_request_id()
        try:
            principal = await self._principal(line.owner)
            body = dict(line.body)  # the stages change the body; the stored line stays as sent
            if line.dialect == "anthropic":
                answer = await self._message(line, body, principal, request_id)
            elif line.url == CHAT_URL:
                answer = await self._chat(line, body, principal, request_id)
            elif line.url == EMBEDDINGS_URL:
                answer = await self._embeddings(line, body, principal, request_id)
            else:
                raise InvalidRequest(f"Invalid request: {line.url} cannot be batched.", param="url")
        except BastionError as exc:
            retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
            return LineOutcome(exc.status, RENDERERS[line.dialect](exc), request_id, retry_after)
        except Exception:
            log.exception("batch_line_failed", batch_id=line.batch_id, custom_id=line.custom_id)
            return LineOutcome(500, RENDERERS[line.dialect](BastionError("internal error")), request_id)
        return LineOutcome(200, answer, request_id)

    async def _principal(self, owner: Identity) -> Principal:
        now = time.monotonic()
        cached = self._principals.get(owner)
        if cached is None or cached[0] <= now:
            try:
                value: Principal | BastionError = await self.authenticator.principal_of(owner)
            except BastionError as exc:
                value = exc
            if len(self._principals) > 1000:
                self._principals.clear()
            cached = (now + self.principal_ttl_s, value)
            self._principals[owner] = cached
        if isinstance(cached[1], BastionError):
            raise cached[1]
        return cached[1]

    def _context(
        self, line: LineRequest, body: dict[str, Any], model: str, principal: Principal, request_id: str
    ) -> RequestContext:
        endpoint: Endpoint = "embeddings" if line.url == EMBEDDINGS_URL else "chat"
        ctx = RequestContext(
            request_id=request_id,
            dialect=line.dialect,
            endpoint=endpoint,
            body=body,
            model=model,
            timing=Timing(),
            user_agent=USER_AGENT,
        )
        ctx.principal = principal
        ctx.ledger_extra = {"batch_id": line.batch_id, "custom_id": line.custom_id}
        return ctx

    async def _chat(self, line: LineRequest, body: dict[str, Any], principal: Principal, request_id: str) -> Any:
        parsed = validate_chat_request(body)
        _refuse_stream(parsed.stream)
        ctx = self._context(line, body, parsed.model, principal, request_id)
        ctx.extension = parse_extension(body.pop(FIELD, None))
        result = await self.pipeline.chat(ctx)
        assert isinstance(result, ChatResponse)  # not streamed
        return shape_completion(result.body, parsed.model)

    async def _embeddings(self, line: LineRequest, body: dict[str, Any], principal: Principal, request_id: str) -> Any:
        parsed = validate_embedding_request(body)
        embedding_texts(parsed, body)
        ctx = self._context(line, body, parsed.model, principal, request_id)
        result = await self.pipeline.embed(ctx)
        return embeddings_body(result, parsed.model, parsed.encoding_format)

    async def _message(self, line: LineRequest, raw: dict[str, Any], principal: Principal, request_id: str) -> Any:
        _refuse_stream(raw.get("stream"))
        body, info = parse_anthropic_request(raw)
        ctx = self._context(line, body, info["model"], principal, request_id)
        ctx.extension = parse_extension(raw.get(FIELD))
        result = await self.pipeline.chat(ctx)
        assert isinstance(result, ChatResponse)
        answer = openai_response_to_anthropic(result.body, info["model"], info["stop_sequences"])
        return answer


def _refuse_stream(stream: Any) -> None:
    if stream:
        raise InvalidRequest("Invalid request: stream is not available in a batch.", param="stream")
