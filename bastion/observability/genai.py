"""An interaction record as OpenTelemetry GenAI semantic conventions see it: the span's name,
attributes and times, the histograms' attributes, and the content in the conventions' message shape.

Plain data in, plain data out: this module imports no OpenTelemetry package, so the gateway can
use its types whether or not the export is on (``bastion/observability/otel.py`` does the export).
The record is the ledger's journal record (``bastion/gateway/stages/ledger.py: build_record``)
with a few request and response fields the ledger does not keep (``operation``, ``max_tokens``,
``temperature``, ``top_p``, ``response_id``, ``response_model``, ``cache``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

#: Our provider kinds -> ``gen_ai.provider.name`` (the conventions' well-known values where there is one).
PROVIDER_NAMES: Final = {"openai": "openai", "anthropic": "anthropic", "local": "llama_cpp"}
#: Where a provider kind's deployments go when they name no ``api_base``.
_DEFAULT_HOSTS: Final = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}

#: The conventions' bucket boundaries for ``gen_ai.client.token.usage`` ({token}).
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
#: ... and for ``gen_ai.client.operation.duration`` (s).
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

TOKEN_USAGE: Final = "gen_ai.client.token.usage"
OPERATION_DURATION: Final = "gen_ai.client.operation.duration"

#: A client-chosen model name that routed nowhere is kept only this long (it names the span).
_MODEL_MAX: Final = 64


class InteractionExporter(Protocol):
    """What the gateway calls once per finished request (``record_interaction`` must not block)."""

    def record_interaction(self, record: dict[str, Any]) -> None: ...

    def record_agent_run(
        self,
        events: Sequence[Any],
        *,
        run_id: str,
        plan: str,
        started_at: float,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """An agent run's decision trace (``bastion/agents/trace.py`` events) as a run span and
        its children; ``started_at`` is the run's wall-clock start, the events' offsets count from it."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ContentRedaction(Protocol):
    """The ledger's redaction of stored content (``bastion.ledger.redact.ContentRedactor``)."""

    def content(self, value: str) -> str: ...

    def content_messages(self, value: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the conventions want to know about a deployment: who serves it and where."""

    provider: str
    address: str | None = None
    port: int | None = None

    @classmethod
    def of(cls, provider_kind: str, api_base: str | None) -> Upstream:
        provider = PROVIDER_NAMES.get(provider_kind, provider_kind)
        if provider_kind == "local":
            return cls(provider)  # in this process: no server
        if not api_base:
            host = _DEFAULT_HOSTS.get(provider_kind)
            return cls(provider, host, 443 if host else None)
        parts = urlsplit(api_base)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        return cls(provider, parts.hostname, port if parts.hostname else None)


@dataclass(slots=True)
class GenAiOperation:
    """One request as a GenAI client span plus what the two histograms record."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    #: The histograms' attributes (low cardinality: no tenant, key or request ids).
    metric_attributes: dict[str, Any]
    duration_s: float
    input_tokens: int | None
    output_tokens: int | None
    error_type: str | None = None


def operation_name(endpoint: str | None, text_completion: bool = False) -> str:
    if endpoint == "embeddings":
        return "embeddings"
    return "text_completion" if text_completion else "chat"


def epoch_ns(seconds: float) -> int:
    """Wall-clock seconds as nanoseconds, without the float's rounding at 1e18 (whole seconds apart)."""
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def error_type(record: Mapping[str, Any]) -> str | None:
    """``error.type``: the error's code (``rate_limited``, ``guard_blocked``...), else the status."""
    status = int(record.get("status") or 200)
    code = record.get("error_code")
    if code:
        return str(code)
    if status == 499:
        return "cancelled"
    return str(status) if status >= 400 else None


def _request_model(record: Mapping[str, Any]) -> str:
    model = str(record.get("model") or "")
    return model[:_MODEL_MAX]


def _upstream(record: Mapping[str, Any], upstreams: Mapping[str, Upstream]) -> Upstream | None:
    """The deployment that answered, else the alias's provider (a refusal or a cache hit)."""
    deployment = record.get("deployment")
    if deployment and deployment in upstreams:
        return upstreams[deployment]
    model = record.get("model")
    return upstreams.get(model) if isinstance(model, str) else None


def _set(attributes: dict[str, Any], name: str, value: Any) -> None:
    if value is not None and value != "":
        attributes[name] = value


def describe(record: Mapping[str, Any], upstreams: Mapping[str, Upstream]) -> GenAiOperation:
    """The span and histogram data of one interaction record. ``upstreams``: deployment ids and
    model aliases -> their provider and server."""
    operation = str(record.get("operation") or operation_name(record.get("endpoint")))
    request_model = _request_model(record)
    upstream = _upstream(record, upstreams)
    response_model = record.get("response_model") or record.get("upstream_model")
    failure = error_type(record)
    latency_s = max(0.0, float(record.get("latency_ms") or 0.0) / 1000.0)
    start_ns = epoch_ns(float(record.get("ts") or 0.0))
    end_ns = start_ns + round(latency_s * 1e9)

    common: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": request_model}
    if upstream is not None:
        common["gen_ai.provider.name"] = upstream.provider
        _set(common, "server.address", upstream.address)
        if upstream.address:
            _set(common, "server.port", upstream.port)
    _set(common, "gen_ai.response.model", response_model)

    attributes = dict(common)
    _set(attributes, "gen_ai.request.max_tokens", _int_or_none(record.get("max_tokens")))
    _set(attributes, "gen_ai.request.temperature", _float_or_none(record.get("temperature")))
    _set(attributes, "gen_ai.request.top_p", _float_or_none(record.get("top_p")))
    _set(attributes, "gen_ai.response.id", record.get("response_id"))
    finish = record.get("finish_reason")
    if finish:
        attributes["gen_ai.response.finish_reasons"] = (str(finish),)
    usage_known = record.get("status") == 200 or bool(record.get("prompt_tokens") or record.get("completion_tokens"))
    input_tokens = int(record.get("prompt_tokens") or 0) if usage_known else None
    output_tokens = int(record.get("completion_tokens") or 0) if usage_known else None
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None and operation != "embeddings":
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    if record.get("cached_tokens"):
        attributes["gen_ai.usage.cache_read.input_tokens"] = int(record["cached_tokens"])
    if record.get("cache_creation_input_tokens"):
        attributes["gen_ai.usage.cache_creation.input_tokens"] = int(record["cache_creation_input_tokens"])
    if failure is not None:
        attributes["error.type"] = failure
    attributes.update(_bastion_attributes(record))

    metric_attributes = dict(common)
    if failure is not None:
        metric_attributes["error.type"] = failure
    return GenAiOperation(
        name=f"{operation} {request_model}" if request_model else operation,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attributes,
        metric_attributes=metric_attributes,
        duration_s=latency_s,
        input_tokens=input_tokens,
        output_tokens=None if operation == "embeddings" else output_tokens,
        error_type=failure,
    )


def _bastion_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """Bastion's own attributes: identifiers, never secrets (a key id names a key, it is not one)."""
    attributes: dict[str, Any] = {}
    _set(attributes, "bastion.request.id", record.get("id"))
    _set(attributes, "bastion.tenant.id", record.get("tenant_id"))
    _set(attributes, "bastion.user.id", record.get("user_id"))
    _set(attributes, "bastion.key.id", record.get("key_id"))
    _set(attributes, "bastion.dialect", record.get("dialect"))
    _set(attributes, "bastion.deployment", record.get("deployment"))
    attributes["bastion.stream"] = bool(record.get("stream"))
    attributes["http.response.status_code"] = int(record.get("status") or 200)
    _set(attributes, "bastion.prompt.id", record.get("prompt_id"))
    _set(attributes, "bastion.prompt.version", record.get("prompt_version"))
    _set(attributes, "bastion.session.id", record.get("session_id"))
    guard = record.get("guard")
    if isinstance(guard, Mapping):
        _set(attributes, "bastion.guard.action", guard.get("action"))
        attributes["bastion.guard.flagged"] = bool(guard.get("flagged"))
    _set(attributes, "bastion.cache", record.get("cache"))
    _set(attributes, "bastion.experiment.id", record.get("experiment_id"))
    _set(attributes, "bastion.experiment.variant", record.get("experiment_variant"))
    if record.get("cost_usd"):
        attributes["bastion.cost_usd"] = float(record["cost_usd"])
    if record.get("retries"):
        attributes["bastion.retries"] = int(record["retries"])
    if record.get("ttft_ms") is not None:
        attributes["bastion.time_to_first_chunk_s"] = float(record["ttft_ms"]) / 1000.0
    if record.get("tokens_estimated"):
        attributes["bastion.usage.estimated"] = True
    return attributes


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# -- content ---------------------------------------------------------------------------------------


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text"))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text") and part.get("text")
        ]
        return "".join(texts) if texts else None
    return None


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = _text_of(message.get("content"))
    if text:
        parts.append({"type": "text", "content": text})
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    if message.get("role") == "tool":
        return [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": text}]
    return parts


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """Chat messages (OpenAI shape) or embedding input as ``gen_ai.input.messages``."""
    if isinstance(messages, str):
        return [{"role": "user", "parts": [{"type": "text", "content": messages}]}]
    out: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, str):
            out.append({"role": "user", "parts": [{"type": "text", "content": message}]})
        elif isinstance(message, Mapping):
            out.append({"role": str(message.get("role") or "user"), "parts": _parts(message)})
    return out


def output_messages(text: str | None, finish_reason: str | None) -> list[dict[str, Any]]:
    """The answer as ``gen_ai.output.messages`` (one assistant message)."""
    if text is None:
        return []
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}],
            "finish_reason": finish_reason or "stop",
        }
    ]


def redacted_content(
    record: Mapping[str, Any], redactor: ContentRedaction
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input and output messages after the ledger's content redaction (PII and secrets, named
    entities too when the ledger redacts names). A record built without content gives nothing."""
    messages = record.get("request_messages")
    answer = record.get("response_text")
    inputs = input_messages(redactor.content_messages(messages)) if messages is not None else []
    outputs = output_messages(
        redactor.content(answer) if isinstance(answer, str) else None, record.get("finish_reason")
    )
    return inputs, outputs
