"""Knowledge stage: retrieval for a chat request, and the answer's ``[n]`` citations mapped back.

A request asks with ``bastion.knowledge`` (``bastion/dialects/extension.py``), or its vault prompt
does with ``metadata.knowledge`` (the request's own field wins). On the way in the stage searches
the caller's tenant (a collection of another tenant is a 404, as for the search API), scans every
retrieved chunk as untrusted tool content with the request's guard policy (a chunk the policy would
block is withheld: indirect injection never reaches the model; redacted text is used redacted),
and puts the rest at the start of the last user message as numbered sources with an instruction
to cite them by ``[n]``. It runs after guard in (which scans what the caller wrote) and before limits and
the cache (which see the larger prompt). On the way out the answer's markers are rewritten
(``bastion/knowledge/citations.py``) and the response gets ``bastion.sources`` and
``bastion.citations``: on a complete answer's body, and in a stream on the chunk that finishes the
last choice (or a final chunk of its own). The ledger's ``extra.knowledge`` records the chunk ids
retrieved, cited and withheld. Requests without retrieval cost one attribute check per hook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bastion.dialects.extension import FIELD, KnowledgeRequest
from bastion.errors import BastionError, InvalidRequest, NotFound
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Chunks, Stage
from bastion.guard.service import GuardService
from bastion.knowledge.citations import Sources, message_text, sources_block, with_sources
from bastion.knowledge.model import Hit, Mode, SearchRequest
from bastion.providers.base import ChatResponse

#: The longest query searched for: the end of the user's message, where the question usually is.
MAX_QUERY_CHARS = 2000
FLAG_REASON = "a knowledge source was flagged by the guard"

DefaultTenant = Callable[[], Awaitable[str | None]]


class Searcher(Protocol):
    async def search(self, tenant_id: str, request: SearchRequest) -> list[Hit]: ...


class KnowledgeStage(Stage):
    name = "knowledge"

    def __init__(self, knowledge: Searcher, default_tenant: DefaultTenant, guard: GuardService | None = None) -> None:
        self.knowledge = knowledge
        self.default_tenant = default_tenant
        self.guard = guard

    async def on_request(self, ctx: RequestContext) -> None:
        extension = ctx.extension
        asked = extension.knowledge if extension is not None else None
        param = "bastion.knowledge"
        if asked is None:
            prompt = ctx.prompt
            if prompt is None or prompt.knowledge is None:
                return
            asked, param = prompt.knowledge, "metadata.knowledge"  # the prompt version's setting
        if ctx.endpoint != "chat" or ctx.response is not None:
            return  # answered already (a guard refusal): nothing to retrieve for
        messages = ctx.body.get("messages")
        last_user = _last_user(messages)
        if last_user is None:
            raise InvalidRequest(
                "Invalid request: retrieval needs a user message to place its sources in.", param="messages"
            )
        query = asked.query or message_text(messages[last_user].get("content"))  # type: ignore[index]
        if not query.strip():
            raise InvalidRequest(
                "Invalid request: the last user message has no text to search for; set bastion.knowledge.query.",
                param=f"{param}.query" if param == "bastion.knowledge" else "messages",
            )
        hits = await self._search(ctx, asked, query[-MAX_QUERY_CHARS:], param)
        hits, withheld, flagged = await self._screen(ctx, hits)
        self._place(ctx, messages, last_user, hits)  # type: ignore[arg-type]
        ctx.knowledge = Sources(hits)
        record: dict[str, Any] = {
            "collections": list(asked.collections),
            "chunks": [hit.chunk_id for hit in hits],
            "cited": [],
        }
        if withheld:
            record["withheld"] = withheld
        if flagged:
            record["flagged"] = flagged
        ctx.ledger_extra = {**(ctx.ledger_extra or {}), "knowledge": record}
        if (withheld or flagged) and ctx.flag_reason is None:
            ctx.flag_reason = FLAG_REASON

    async def _search(self, ctx: RequestContext, asked: KnowledgeRequest, query: str, param: str) -> list[Hit]:
        tenant_id = ctx.principal.tenant_id if ctx.principal is not None else await self.default_tenant()
        if tenant_id is None:
            raise NotFound(f"no knowledge collection {asked.collections[0]!r}", param=f"{param}.collections")
        mode: Mode = "bm25" if asked.mode == "bm25" else "dense" if asked.mode == "dense" else "hybrid"
        request = SearchRequest(
            query,
            list(asked.collections),
            k=asked.k,
            mode=mode,
            filters=asked.filters,
            mmr_lambda=asked.mmr_lambda,
            threshold=asked.threshold,
        )
        try:
            return await self.knowledge.search(tenant_id, request)
        except BastionError as exc:
            if exc.param is None:
                exc.param = f"{param}.collections" if isinstance(exc, NotFound) else param
            raise

    async def _screen(self, ctx: RequestContext, hits: list[Hit]) -> tuple[list[Hit], list[int], list[int]]:
        """Each chunk scanned as tool content under the request's policy: (kept, withheld, flagged)."""
        guard, state = self.guard, ctx.guard
        if guard is None or state is None or not hits:
            return hits, [], []
        kept: list[Hit] = []
        withheld: list[int] = []
        flagged: list[int] = []
        for hit in hits:
            as_message = [{"role": "tool", "content": hit.text}]
            result = await guard.scan_input(state.policy, as_message)
            result = await guard.deepen_injection(state.policy, result, as_message)
            if result.blocked:
                withheld.append(hit.chunk_id)
                continue
            if result.flagged:
                flagged.append(hit.chunk_id)
            if result.action == "redact" and result.messages:
                hit = dataclasses.replace(hit, text=message_text(result.messages[0].get("content")))
            kept.append(hit)
        return kept, withheld, flagged

    @staticmethod
    def _place(ctx: RequestContext, messages: list[Any], index: int, hits: list[Hit]) -> None:
        """The sources go in the user's turn, never in a system message: retrieved text is data."""
        if ctx.ledger_messages is None:
            ctx.ledger_messages = messages  # the ledger keeps what the client sent, not the sources
        message = messages[index]
        placed = [*messages]
        placed[index] = {**message, "content": with_sources(message.get("content"), sources_block(hits))}
        ctx.body["messages"] = placed
        ctx.body_rewritten()

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        sources = ctx.knowledge
        if sources is None:
            return response
        body = response.body
        choices = []
        for position, choice in enumerate(body.get("choices") or ()):
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                index = choice.get("index", position)
                text = sources.stream(index if isinstance(index, int) else position).rewrite(message["content"])
                choice = {**choice, "message": {**message, "content": text}}
            choices.append(choice)
        extension = body.get(FIELD)
        earlier: dict[str, Any] = extension if isinstance(extension, dict) else {}
        rewritten = {**body, "choices": choices, FIELD: {**earlier, **sources.response_field()}}
        _record_cited(ctx, sources)
        return dataclasses.replace(response, body=rewritten)

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        sources = ctx.knowledge
        if sources is None:
            return chunks
        return _cited_stream(ctx, chunks, sources)


async def _cited_stream(ctx: RequestContext, chunks: Chunks, sources: Sources) -> Chunks:
    """The chunks with their text rewritten; the ``bastion`` field rides on the chunk that finishes
    the last open choice, or on a chunk of its own at the end."""
    finished: set[int] = set()
    sent = False
    last: dict[str, Any] = {}
    try:
        async for chunk in chunks:
            last = chunk
            choices = chunk.get("choices")
            if choices:
                rewritten = [_rewrite_choice(choice, sources, finished) for choice in choices]
                chunk = {**chunk, "choices": rewritten}
                if not sent and finished and sources.streams.keys() <= finished:
                    chunk[FIELD] = sources.response_field()
                    sent = True
            yield chunk
        if not sent:
            tails = [
                {"index": index, "delta": {"content": tail}, "finish_reason": None}
                for index, stream in sorted(sources.streams.items())
                if index not in finished
                for tail in (stream.finish(),)
                if tail
            ]
            yield {
                "id": last.get("id"),
                "object": "chat.completion.chunk",
                "created": last.get("created"),
                "model": last.get("model"),
                "choices": tails,
                FIELD: sources.response_field(),
            }
    finally:
        await chunks.aclose()
        _record_cited(ctx, sources)


def _rewrite_choice(choice: Any, sources: Sources, finished: set[int]) -> Any:
    if not isinstance(choice, dict):
        return choice
    index = choice.get("index", 0)
    index = index if isinstance(index, int) else 0
    delta = choice.get("delta")
    stream = sources.stream(index)
    text = delta.get("content") if isinstance(delta, dict) else None
    content = stream.feed(text) if isinstance(text, str) else None
    if choice.get("finish_reason") and index not in finished:
        finished.add(index)
        tail = stream.finish()
        if tail:
            content = (content or "") + tail
    if content is None:
        return choice
    return {**choice, "delta": {**(delta or {}), "content": content}}


def _record_cited(ctx: RequestContext, sources: Sources) -> None:
    record = (ctx.ledger_extra or {}).get("knowledge")
    if isinstance(record, dict):
        record["cited"] = sources.cited_chunk_ids()


def _last_user(messages: Any) -> int | None:
    if not isinstance(messages, list):
        return None
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            return index
    return None
