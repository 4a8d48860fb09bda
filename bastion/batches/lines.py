"""The contract between a batch and the gateway: one line in, one outcome out.

A batch knows neither the gateway nor HTTP: it hands each line to a ``LineRunner`` (the gateway's
``PipelineLines``, or a test's fake), which runs it through the same pipeline as a live request,
as the batch's owner, and answers with the status and body a live call would have got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bastion.auth.principal import Identity

LineDialect = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class LineRequest:
    #: Whose request it is: resolved again when the line runs (a revoked key stops the batch).
    owner: Identity
    dialect: LineDialect
    #: ``/v1/chat/completions``, ``/v1/embeddings`` or ``/v1/messages``.
    url: str
    body: dict[str, Any]
    batch_id: str
    custom_id: str


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """What a live call would have answered: a 2xx with the dialect's body, or an error status
    with the dialect's error body."""

    status_code: int
    body: dict[str, Any]
    request_id: str
    #: For a 429 from the deployment's own rate limits: how long to wait before trying again.
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class LineRunner(Protocol):
    async def run(self, line: LineRequest) -> LineOutcome: ...
