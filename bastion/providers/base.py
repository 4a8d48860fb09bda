"""The one interface every provider implements, and the data that crosses it.

Inside Bastion a chat call is always in the OpenAI chat-completions shape (plain dicts, as the
wire carries them): the Anthropic dialect is translated to it on the way in and back on the way
out, and each provider translates it to its upstream's native API. Dicts rather than models keep
the common OpenAI-to-OpenAI path free of copying; the HTTP layer has validated them already.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from bastion.config.settings import DeploymentSettings, TimeoutSettings
from bastion.errors import InvalidRequest


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Prompt tokens read from the provider's prompt cache (OpenAI's ``cached_tokens``,
    #: Anthropic's ``cache_read_input_tokens``); part of ``prompt_tokens``.
    cached_tokens: int = 0
    #: Prompt tokens written to the prompt cache (Anthropic's ``cache_creation_input_tokens``);
    #: part of ``prompt_tokens``.
    cache_creation_tokens: int = 0
    #: Of ``cache_creation_tokens``, those written with the 1-hour TTL (the rest: 5 minutes).
    cache_creation_1h_tokens: int = 0
    #: True when counted by Bastion's tokenizer because the provider reported none.
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.cache_creation_tokens:
            # LiteLLM's extra keys, as the Anthropic provider reports them (``openai_usage``).
            usage["cache_read_input_tokens"] = self.cached_tokens
            usage["cache_creation_input_tokens"] = self.cache_creation_tokens
            if self.cache_creation_1h_tokens:
                usage["cache_creation"] = {
                    "ephemeral_5m_input_tokens": self.cache_creation_tokens - self.cache_creation_1h_tokens,
                    "ephemeral_1h_input_tokens": self.cache_creation_1h_tokens,
                }
        return usage

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        """OpenAI usage, with the prompt-cache extras an Anthropic upstream's usage carries
        (``cache_creation_input_tokens`` and its ``cache_creation`` TTL breakdown)."""
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details") or {}
        created = _tokens(usage.get("cache_creation_input_tokens"))
        breakdown = usage.get("cache_creation")
        hour = _tokens(breakdown.get("ephemeral_1h_input_tokens")) if isinstance(breakdown, dict) else 0
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
            cache_creation_tokens=created,
            cache_creation_1h_tokens=min(hour, created),
        )


def _tokens(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(slots=True)
class ChatRequest:
    """A chat call in the OpenAI shape. ``body['model']`` is rewritten per deployment by providers."""

    body: dict[str, Any]
    request_id: str
    stream: bool = False
    #: A legacy text completion (``/v1/completions``): the user message is a prompt to continue.
    #: A provider that can complete raw text (the local model) does; others answer it as chat.
    text_completion: bool = False
    #: A Responses API request as the client sent it (``POST /v1/responses``), which a deployment
    #: with ``responses: native`` sends to its upstream's ``/responses`` instead of ``body``.
    passthrough: dict[str, Any] | None = None


@dataclass(slots=True)
class ChatResponse:
    """A complete answer: an OpenAI ``chat.completion`` object and its token usage."""

    body: dict[str, Any]
    usage: Usage | None = None
    #: The upstream's own Response object when the request was passed through (``passthrough``);
    #: ``body`` is then its chat-shaped reading, which the stages (guard, usage, ledger) see.
    native: dict[str, Any] | None = None


@dataclass(slots=True)
class EmbeddingResponse:
    vectors: list[list[float]]
    usage: Usage | None = None


@dataclass(slots=True)
class Deployment:
    """A configured upstream model, as the router and providers see it."""

    id: str
    alias: str
    settings: DeploymentSettings
    timeouts: TimeoutSettings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.settings.provider

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def tools(self) -> str:
        """``call``, ``reject`` or ``ignore``: the configured value, else the provider's default."""
        return self.settings.tools or TOOLS_BY_PROVIDER.get(self.provider, "call")


#: What each provider does with ``tools`` unless a deployment says otherwise (``tools:``).
TOOLS_BY_PROVIDER = {"openai": "call", "anthropic": "call", "local": "reject"}
#: The request fields that ask for tool calls (``functions`` / ``function_call``: the old names).
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


#: A stream of OpenAI ``chat.completion.chunk`` dicts. The last chunk carries ``usage`` when known.
#: A stream of OpenAI ``chat.completion.chunk`` dicts (closable: closing it cancels the upstream call).
ChunkStream = AsyncGenerator[dict[str, Any], None]


class Provider(abc.ABC):
    """One upstream deployment. Instances are built once at start-up and live for the process.

    Errors are raised as ``bastion.errors.UpstreamError`` subclasses with ``retryable`` set, so
    the router can decide about retries without knowing the provider.
    """

    #: Whether the upstream answers ``n > 1`` itself; if not, ``providers.fanout`` makes ``n`` calls.
    native_n: ClassVar[bool] = False

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire long-lived resources (HTTP pools, models). Called once before serving."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    def admit(self, request: ChatRequest) -> ChatRequest:
        """``request`` as this deployment takes it: tools refused (400) or dropped when the
        deployment cannot call them (``Deployment.tools``)."""
        body = request.body
        if not (body.get("tools") or body.get("functions")):
            return request
        policy = self.deployment.tools
        if policy == "call":
            return request
        if policy == "ignore":
            kept = {key: value for key, value in body.items() if key not in TOOL_FIELDS}
            return replace(request, body=kept)
        param = "tools" if body.get("tools") else "functions"
        raise InvalidRequest(
            f"model {self.deployment.alias!r} cannot call tools (deployment {self.deployment.id}, "
            f"{self.deployment.provider} {self.deployment.model}); send the request without {param!r}, "
            "or set `tools: ignore` on the deployment to have them dropped",
            param=param,
        )

    @abc.abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Return a complete answer."""

    @abc.abstractmethod
    def stream_chat(self, request: ChatRequest) -> ChunkStream:
        """Return an async iterator of chunks. Nothing is sent upstream until it is first awaited."""

    async def embed(self, inputs: list[str], request_id: str, dimensions: int | None = None) -> EmbeddingResponse:
        """Embed ``inputs``; ``dimensions`` asks for shortened vectors where the model supports it."""
        raise InvalidRequest(f"model {self.deployment.alias!r} does not support embeddings", param="model")

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """The prompt tokens of ``request`` as this deployment's model counts them, or None when
        the provider has no exact counter (the caller then estimates)."""
        return None

    async def check_ready(self) -> bool:
        """Whether the upstream is believed reachable (used by /readyz; must be cheap)."""
        return True
