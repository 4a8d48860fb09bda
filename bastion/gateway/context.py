"""The state of one request as it moves through the pipeline."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.errors import BastionError
from bastion.providers.base import ChatResponse, Usage
from bastion.routing.router import RouteTrace
from bastion.usage.text import TextParts

Dialect = Literal["openai", "anthropic", "bastion"]
Endpoint = Literal["chat", "embeddings"]


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


@dataclass(slots=True)
class Timing:
    """Set by the HTTP middleware when the request arrives; read when headers go out."""

    started: float = field(default_factory=time.perf_counter)
    #: The route trace of the request, once there is one; its upstream time is not overhead.
    trace: RouteTrace | None = None

    def overhead_ms(self) -> float:
        upstream_s = self.trace.upstream_s if self.trace is not None else 0.0
        return max(0.0, (time.perf_counter() - self.started - upstream_s) * 1000.0)


@dataclass(slots=True)
class RequestContext:
    request_id: str
    dialect: Dialect
    endpoint: Endpoint
    #: The request in the OpenAI shape (chat-completions or embeddings body).
    body: dict[str, Any]
    model: str
    timing: Timing
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    user_agent: str | None = None
    trace: RouteTrace = field(default_factory=RouteTrace)
    #: Who is calling (filled by the auth stage; None while auth is off).
    principal: Any = None
    #: A stage may answer without an upstream call (for example a cache hit).
    response: ChatResponse | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    #: Text of the answer, accumulated for streams (for usage estimates, guards and the ledger).
    output_text: list[str] = field(default_factory=TextParts)
    finish_reason: str | None = None
    status: int = 200
    error: BastionError | None = None
    first_chunk_at: float | None = None
    finished_at: float | None = None
    #: Per-stage data that other stages or the ledger read (guard verdicts, prompt id, ...).
    annotations: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timing.trace = self.trace

    @property
    def latency_s(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return end - self.timing.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_chunk_at is None else self.first_chunk_at - self.timing.started
