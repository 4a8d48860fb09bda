"""Validation of OpenAI-dialect request bodies.

The models check what the gateway relies on and what OpenAI itself would reject; unknown fields
are allowed and forwarded, as OpenAI-compatible upstreams grow new ones faster than we do. The
validated model is discarded: the original dict is forwarded untouched, which is cheaper than
re-serialising and keeps extension fields intact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.errors import InvalidRequest


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Open):
    data: str
    format: str


class AudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(_Open):
    type: Literal["file"]
    file: dict[str, Any]


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role in ("system", "developer", "user", "tool") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class FunctionDefinition(_Open):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.\-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class StreamOptions(_Open):
    include_usage: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    #: May be empty only when a vault prompt supplies the conversation (``prompt:`` or ``bastion``).
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, int | float] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    #: Bastion's own extension (prompt vault reference and variables); never sent upstream.
    bastion: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class EmbeddingRequest(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


def _param_path(raw: Any, loc: tuple[int | str, ...], missing: bool) -> str | None:
    """The field path as the client wrote it.

    pydantic puts union member tags ("str", "list[str]", "function-after[...]") into ``loc``; the
    client never wrote them, so only the parts found by walking the raw body are kept (and, for a
    missing field, its name at the end).
    """
    parts: list[str] = []
    current = raw
    for index, part in enumerate(loc):
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        elif missing and index == len(loc) - 1 and isinstance(part, str):
            pass  # the missing field itself: named although the body lacks it
        else:
            continue  # a union tag
        parts.append(str(part))
    return ".".join(parts) or None


def first_error(exc: ValidationError, raw: Any) -> InvalidRequest:
    """A short message naming the offending field, with none of pydantic's internals."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    # Unions report one error per branch; the most specific location is most useful, and a broken
    # constraint (empty list, out of range) says more than "wrong type" from the other branches.
    err = max(errors, key=lambda e: (len(e["loc"]), not e["type"].endswith("_type")))
    param = _param_path(raw, tuple(err["loc"]), err["type"] == "missing")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "is required"
    text = f"{param}: {message}" if param else message
    return InvalidRequest(f"Invalid request: {text}", param=param)


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_object(model: type[ModelT], body: Any) -> ModelT:
    """``body`` validated as ``model``; a 400 naming the first bad field otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise first_error(exc, body) from None


def validate_chat_request(body: Any) -> ChatCompletionRequest:
    request = parse_object(ChatCompletionRequest, body)
    uses_prompt = request.model.startswith("prompt:") or bool(request.bastion and request.bastion.get("prompt_id"))
    if not request.messages and not uses_prompt:
        raise InvalidRequest("Invalid request: messages: must contain at least one message", param="messages")
    return request


def validate_embedding_request(body: Any) -> EmbeddingRequest:
    return parse_object(EmbeddingRequest, body)
