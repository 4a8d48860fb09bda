"""The stage contract: what a pipeline stage may do with a request.

A contract module: it imports data types only, so a stage is tested with fakes of its own
collaborators and nothing else. A stage is constructed with exactly the services it uses (the
composition root, ``bastion/gateway/compose.py``, builds them) and has no lifecycle of its own:
services that hold resources start and stop with the gateway.
"""

from __future__ import annotations

from bastion.gateway.context import RequestContext
from bastion.providers.base import ChatResponse, ChunkStream

#: A stream of OpenAI ``chat.completion.chunk`` dicts; the last one carries ``usage``.
Chunks = ChunkStream


class Stage:
    """A pipeline stage. Override what you need; the defaults pass everything through."""

    name: str = "stage"

    async def on_request(self, ctx: RequestContext) -> None:
        """Inspect or change the request before it is routed; raise ``BastionError`` to reject it."""

    async def on_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        """Inspect or change a complete answer."""
        return response

    def on_stream(self, ctx: RequestContext, chunks: Chunks) -> Chunks:
        """Wrap a stream of chunks; runs before any chunk is pulled."""
        return chunks

    async def on_complete(self, ctx: RequestContext) -> None:
        """Called once when the exchange is over, successful or not. Must not raise."""
