"""The state of one request as it moves through the pipeline.

A contract module: it holds data types only (no gateway, no service, no Starlette), so a stage and
its tests need nothing else. Every value one stage hands to another is a typed field here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.auth.principal import Principal
from bastion.cache.state import CacheState
from bastion.dialects.errors import Dialect
from bastion.dialects.extension import BastionExtension
from bastion.errors import BastionError
from bastion.experiments.model import Arm
from bastion.guard.state import GuardState, PlantedPrompt
from bastion.knowledge.citations import Sources
from bastion.limits.plan import Ticket
from bastion.providers.base import ChatResponse, Usage
from bastion.routing.trace import RouteTrace
from bastion.text_parts import TextParts
from bastion.vault.model import PromptInUse

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
    #: The request in the OpenAI shape (chat-completions or embeddings body), as sent upstream.
    body: dict[str, Any]
    model: str
    timing: Timing
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    #: A legacy text completion (``/v1/completions``) carried as a one-message chat request.
    text_completion: bool = False
    user_agent: str | None = None
    #: The request's ``bastion`` field (vault prompt reference, variables), parsed by the dialect layer.
    extension: BastionExtension | None = None
    trace: RouteTrace = field(default_factory=RouteTrace)

    # -- filled on the way in ------------------------------------------------------------------
    #: Who is calling (the auth stage; None while auth is off).
    principal: Principal | None = None
    #: The vault prompt in use (the prompt stage).
    prompt: PromptInUse | None = None
    #: The system prompt sent upstream and its canary, for the output guard's leak detection (the
    #: prompt stage for vault prompts, the guard for client prompts). Never logged or recorded.
    planted_prompt: PlantedPrompt | None = None
    #: The guard's policy and verdicts (the guard stages; the ledger records a summary).
    guard: GuardState | None = None
    #: What the ledger records as the request's messages when the body sent upstream differs from
    #: what the client sent (a vault prompt, a canary, redacted text).
    ledger_messages: list[Any] | None = None
    #: The admitted rate limits and budgets, settled when the exchange is over (the limits stage).
    limits: Ticket | None = None
    #: Headers for the response (``x-ratelimit-*``); error responses carry them on the exception.
    response_headers: dict[str, str] | None = None
    #: The agent session the request belongs to.
    session_id: str | None = None
    #: Why the interaction is flagged for review, beyond the guard's own flags.
    flag_reason: str | None = None
    #: Merged into the ledger's ``extra`` column (experiment arm, cache hit, ...).
    ledger_extra: dict[str, Any] | None = None
    #: The retrieved sources placed in the context and the answer's citations (the knowledge stage).
    knowledge: Sources | None = None
    #: The experiment arm the request was assigned to (the experiment stage), for the ledger.
    experiment: Arm | None = None
    #: What the response cache decided (the cache stage): bypass, miss, hit, semantic hit.
    cache: CacheState | None = None
    #: A Responses request as the client sent it, for a ``responses: native`` deployment to pass
    #: through. A stage that changes what goes upstream (a vault prompt, a canary, redacted text)
    #: clears it with ``body_rewritten``: the deployment then gets the translated ``body``.
    passthrough: dict[str, Any] | None = None

    # -- filled on the way out -----------------------------------------------------------------
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

    def __post_init__(self) -> None:
        self.timing.trace = self.trace

    def body_rewritten(self) -> None:
        """``body`` no longer says what the client sent: nothing may be passed through as sent."""
        self.passthrough = None

    def add_response_headers(self, headers: dict[str, str]) -> None:
        if self.response_headers is None:
            self.response_headers = headers
        else:
            self.response_headers.update(headers)

    @property
    def latency_s(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return end - self.timing.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_chunk_at is None else self.first_chunk_at - self.timing.started
