"""Validation of Anthropic Messages requests arriving at ``POST /v1/messages``.

The models mirror the request shape of the Anthropic API (``anthropic.types.MessageCreateParams``)
closely enough to reject what Anthropic itself would reject, while ``extra="allow"`` keeps
fields Anthropic adds later from breaking clients. Only the block types the gateway can translate
are accepted; anything else is refused with a message naming the field, so a client learns what
went wrong without reading a pydantic dump.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
)

from bastion.errors import InvalidRequest


class _Open(BaseModel):
    """Anthropic tolerates fields it does not know in most objects; so do we."""

    model_config = ConfigDict(extra="allow")


def _str_or_list(value: Any) -> str | None:
    # A callable discriminator picks the branch up front, so a bad list reports the list's own
    # error instead of "not a string" *and* the list's error.
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else None


#: Marks a ``str | list[...]`` union whose branch is chosen by the input's JSON type.
_STR_OR_LIST = Discriminator(_str_or_list, custom_error_type="str_or_list", custom_error_message="string or array")
_Str = Annotated[str, Tag("str")]


class CacheControl(_Open):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(_Open):
    type: Literal["text"]
    text: StrictStr
    cache_control: CacheControl | None = None


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class UrlSource(_Open):
    type: Literal["url"]
    url: StrictStr


class TextSource(_Open):
    type: Literal["text"]
    media_type: StrictStr = "text/plain"
    data: StrictStr


TextContent = Annotated[_Str | Annotated[list[TextBlock], Tag("list")], _STR_OR_LIST]


class ContentSource(_Open):
    type: Literal["content"]
    content: TextContent


ImageSource = Annotated[Base64Source | UrlSource, Field(discriminator="type")]
DocumentSource = Annotated[Base64Source | UrlSource | TextSource | ContentSource, Field(discriminator="type")]


class ImageBlock(_Open):
    type: Literal["image"]
    source: ImageSource
    cache_control: CacheControl | None = None


class DocumentBlock(_Open):
    type: Literal["document"]
    source: DocumentSource
    title: StrictStr | None = None
    context: StrictStr | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]
    cache_control: CacheControl | None = None


ToolResultPart = Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]


ToolResultContent = Annotated[_Str | Annotated[list[ToolResultPart], Tag("list")], _STR_OR_LIST]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: ToolResultContent | None = None
    is_error: StrictBool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr | None = None


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: StrictStr


ContentBlock = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


MessageContent = Annotated[_Str | Annotated[list[ContentBlock], Tag("list")], _STR_OR_LIST]


class Message(_Open):
    role: Literal["user", "assistant"]
    content: MessageContent


class Tool(_Open):
    # Server tools (web search, code execution, ...) carry other ``type`` values and no schema;
    # they cannot run anywhere but at Anthropic, so they are refused rather than half-translated.
    type: Literal["custom"] | None = None
    name: Annotated[StrictStr, Field(min_length=1)]
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    strict: StrictBool | None = None
    cache_control: CacheControl | None = None


class ToolChoiceAuto(_Open):
    type: Literal["auto"]
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceAny(_Open):
    type: Literal["any"]
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceTool(_Open):
    type: Literal["tool"]
    name: StrictStr
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceNone(_Open):
    type: Literal["none"]


ToolChoice = Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")]


class Metadata(_Open):
    user_id: StrictStr | None = None


class OutputFormat(_Open):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Open):
    format: OutputFormat | None = None


class MessagesRequest(_Open):
    model: Annotated[StrictStr, Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    system: TextContent | None = None
    stop_sequences: list[StrictStr] | None = None
    stream: StrictBool | None = None
    # strict: a JSON string such as "0.5" is refused, as Anthropic refuses it.
    temperature: Annotated[float, Field(strict=True, ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(strict=True, ge=0, le=1)] | None = None
    top_k: Annotated[StrictInt, Field(ge=0)] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None
    # Accepted and knowingly ignored: extended thinking cannot be expressed in the OpenAI shape.
    thinking: dict[str, Any] | None = None


def validate_request(raw: Any) -> MessagesRequest:
    """Validate an Anthropic Messages request body or raise ``InvalidRequest`` naming the field."""
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return MessagesRequest.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        message, param = describe_error(raw, errors[0] if errors else {})
        raise InvalidRequest(message, param=param) from None


def _dotted(raw: Any, loc: tuple[Any, ...]) -> str:
    """The field path as the client wrote it.

    pydantic puts union tags ("str", "list", "text", ...) into ``loc``; the client never wrote
    them. Walking the raw input tells them apart from real keys, except where a tag equals a key
    of the same object (a text block's ``text``), so both readings are tried and the one that
    follows more of ``loc`` through the input wins."""
    return ".".join(_walk(raw, loc))


def _walk(current: Any, loc: tuple[Any, ...]) -> list[str]:
    if not loc:
        return []
    element, rest = loc[0], loc[1:]
    best = _walk(current, rest)  # reading ``element`` as a tag
    if isinstance(current, dict) and isinstance(element, str) and element in current:
        child: Any = current[element]
    elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
        child = current[element]
    else:
        if not rest and isinstance(current, dict) and isinstance(element, str) and not best:
            return [element]  # a missing field: named although the input lacks it
        return best
    followed = [str(element), *_walk(child, rest)]
    return followed if len(followed) >= len(best) else best


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


def describe_error(raw: Any, error: Any) -> tuple[str, str | None]:
    """A one-line human message and the dotted parameter path for one pydantic error."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    path = _dotted(raw, loc) or "request"
    if kind == "str_or_list":
        return f"{path} must be a string or an array", path
    if kind == "missing":
        return f"{path} is required", path
    if kind in _TYPE_WORDS:
        return f"{path} must be {_TYPE_WORDS[kind]}", path
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"{path}.type {ctx.get('tag')!r} is not supported (expected {expected})", f"{path}.type"
    if kind == "union_tag_not_found":
        return f"{path}.type is required", f"{path}.type"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{path} must be {expected}", path
    if kind == "too_short":
        return f"{path} must not be empty", path
    if kind in ("greater_than_equal", "greater_than"):
        return f"{path} must be at least {ctx.get('ge', ctx.get('gt'))}", path
    if kind in ("less_than_equal", "less_than"):
        return f"{path} must be at most {ctx.get('le', ctx.get('lt'))}", path
    if kind == "string_too_short":
        return f"{path} must not be empty", path
    # pydantic's own ``msg`` is one short sentence (the URL and input are excluded above).
    return f"{path}: {error.get('msg', 'invalid value')}", path
