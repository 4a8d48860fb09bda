"""What the model endpoints, the system endpoints and every error answer with, as pydantic models.

The gateway builds these bodies as dicts (or relays an upstream's); the models only describe them,
for the OpenAPI document. Bodies relayed from an upstream may carry more fields than listed here
(``extra="allow"``), as OpenAI-compatible servers add fields faster than clients need them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ----------------------------------------------------------------------------------------


class ErrorDetail(_Closed):
    message: str
    #: ``invalid_request_error``, ``authentication_error``, ``permission_error``, ``not_found_error``, ...
    type: str
    #: The offending field, as a dotted path, where one is to blame.
    param: str | None
    #: A stable machine-readable code (``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``, ...).
    code: str | None


class Error(_Closed):
    """The OpenAI error shape; Bastion's own API (``/api/...``, system routes) answers with it too."""

    error: ErrorDetail


class AnthropicErrorDetail(_Closed):
    type: str
    message: str


class AnthropicError(_Closed):
    """The Anthropic error shape, on ``/v1/messages``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


# -- OpenAI: chat completions ----------------------------------------------------------------------


class FunctionCallOut(_Open):
    name: str
    arguments: str


class ToolCallOut(_Open):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class Choice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None = None


class CompletionUsage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class KnowledgeCitations(_Open):
    """Bastion's answer field when the request asked for retrieval (``bastion.knowledge``;
    docs/KNOWLEDGE.md, "Answers with citations"): every source placed in the context, numbered from
    1, and the answer's ``[n]`` citations of them. Anthropic streams carry it in ``message_delta``."""

    sources: list[dict[str, Any]]
    citations: list[dict[str, Any]]


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    bastion: KnowledgeCitations | None = None


class ChunkDelta(_Open):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_Open):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a streamed completion; the stream ends with ``data: [DONE]``. With
    ``stream_options.include_usage`` the last chunk has no choices and carries ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    #: On the chunk that finishes the last choice (or a last chunk of its own).
    bastion: KnowledgeCitations | None = None


class StreamErrorDetail(_Closed):
    message: str
    type: str
    code: str | None


class StreamError(_Closed):
    """An ``error`` data event: the stream failed after it had started (the status was already 200)."""

    error: StreamErrorDetail


# -- OpenAI: legacy text completions ---------------------------------------------------------------


class TextCompletionChoice(_Open):
    text: str
    index: int
    #: Always null: Bastion does not return log probabilities on this endpoint.
    logprobs: None = None
    #: ``stop``, ``length`` or ``content_filter``; null on streamed chunks before a choice's last.
    finish_reason: Literal["stop", "length", "content_filter"] | None


class TextCompletion(_Open):
    """A ``text_completion``: the whole answer, or one streamed ``data:`` event (the same object;
    the stream ends with ``data: [DONE]``, and with ``stream_options.include_usage`` its last
    event has no choices and carries ``usage``)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextCompletionChoice]
    usage: CompletionUsage | None = None


# -- OpenAI: moderations (Bastion's guard) ---------------------------------------------------------


class ModerationResult(_Closed):
    flagged: bool
    #: OpenAI's 13 categories (always false: Bastion does not detect them) and Bastion's own
    #: (``bastion/prompt_injection``, ``bastion/pii``, ``bastion/secret``, ``bastion/invisible_text``,
    #: ``bastion/scan_budget_exceeded``).
    categories: dict[str, bool]
    category_scores: dict[str, float]
    #: ``["text"]`` for the categories Bastion evaluated, ``[]`` for the others.
    category_applied_input_types: dict[str, list[Literal["text"]]]


class ModerationResponse(_Closed):
    id: str
    #: Always ``bastion-guard``, whatever model the request named.
    model: str
    results: list[ModerationResult]


# -- OpenAI: embeddings and models -----------------------------------------------------------------


class Embedding(_Closed):
    object: Literal["embedding"]
    index: int
    #: Floats, or with ``encoding_format: base64`` little-endian float32 bytes in base64.
    embedding: list[float] | str


class EmbeddingUsage(_Closed):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Closed):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(_Closed):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Closed):
    object: Literal["list"]
    data: list[Model]


# -- Anthropic: messages ---------------------------------------------------------------------------


class AnthropicTextOut(_Open):
    type: Literal["text"]
    text: str


class AnthropicToolUseOut(_Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class AnthropicUsage(_Open):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class AnthropicMessageResponse(_Open):
    """A Messages API answer. Streamed (``"stream": true``) it arrives as Anthropic's server-sent
    events: ``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``,
    ``message_stop`` (and ``error``)."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[Annotated[AnthropicTextOut | AnthropicToolUseOut, Field(discriminator="type")]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: AnthropicUsage
    bastion: KnowledgeCitations | None = None


AnthropicEventType = Literal[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
]


class AnthropicStreamData(_Open):
    """The data of an Anthropic stream event: its ``type`` repeats the event's name."""

    type: AnthropicEventType


# -- system ----------------------------------------------------------------------------------------


class Health(_Closed):
    status: Literal["ok"]


class DeploymentReadiness(_Closed):
    model: str
    provider: str
    ready: bool
    circuit: Literal["closed", "open", "half_open"]
    in_flight: int


class Readiness(_Closed):
    """``status`` always; the details only to callers allowed to see them (docs/AUTH.md)."""

    status: Literal["ready", "not_ready"]
    #: Models with no deployment that can take a call now.
    unavailable_models: list[str] = Field(default_factory=list)
    #: By deployment id.
    deployments: dict[str, DeploymentReadiness] = Field(default_factory=dict)


class AnthropicTokenCount(_Closed):
    """``POST /v1/messages/count_tokens``; the ``x-bastion-token-count`` header says whether the
    count is ``exact`` (the deployment's tokenizer) or Bastion's ``estimate``."""

    input_tokens: int


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    ChatCompletion,
    ChatCompletionChunk,
    StreamError,
    TextCompletion,
    ModerationResponse,
    EmbeddingList,
    ModelList,
    Model,
    Health,
    Readiness,
)
ANTHROPIC_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    AnthropicError,
    AnthropicMessageResponse,
    AnthropicStreamData,
    AnthropicTokenCount,
)
