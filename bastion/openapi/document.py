"""The OpenAPI 3.1 document of the gateway, assembled from the operation table and the code's models.

What depends on the configuration (whether credentials are optional, whether the operational
endpoints are public) is an argument, so the document describes the gateway that serves it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from bastion.auth.ops import metrics_public, readyz_details_public
from bastion.auth.schemas import KeyCreate, KeyUpdate, TenantCreate, TenantUpdate, UserCreate, UserUpdate
from bastion.config.settings import Settings
from bastion.dialects.anthropic_schema import MessagesRequest
from bastion.dialects.completions import CompletionRequest
from bastion.dialects.moderations import ModerationRequest
from bastion.dialects.openai_schema import ChatCompletionRequest, EmbeddingRequest
from bastion.ledger.store import LIST_COLUMNS
from bastion.openapi.admin_models import ADMIN_MODELS
from bastion.openapi.agent_operations import TAG as AGENTS_TAG
from bastion.openapi.agent_operations import TAG_DESCRIPTION as AGENTS_TAG_DESCRIPTION
from bastion.openapi.agent_operations import agent_components
from bastion.openapi.analyzer_operations import analyzer_components
from bastion.openapi.batch_operations import batch_components
from bastion.openapi.bulk_operations import bulk_components
from bastion.openapi.components import pydantic_components, ref, table_schema
from bastion.openapi.experiment_operations import experiment_components
from bastion.openapi.files_models import files_components
from bastion.openapi.insights_operations import insights_components
from bastion.openapi.knowledge_operations import TAG as KNOWLEDGE_TAG
from bastion.openapi.knowledge_operations import TAG_DESCRIPTION as KNOWLEDGE_TAG_DESCRIPTION
from bastion.openapi.knowledge_operations import knowledge_components
from bastion.openapi.model_responses import ANTHROPIC_RESPONSE_MODELS, RESPONSE_MODELS
from bastion.openapi.operation import CHAT_MODEL, EMBEDDING_MODEL, Operation, Param
from bastion.openapi.operations import OPERATIONS
from bastion.openapi.redteam_operations import TAG as REDTEAM_TAG
from bastion.openapi.redteam_operations import TAG_DESCRIPTION as REDTEAM_TAG_DESCRIPTION
from bastion.openapi.redteam_operations import redteam_components
from bastion.openapi.responses_models import responses_components
from bastion.openapi.review_operations import review_components
from bastion.openapi.streams import stream_components
from bastion.responses.request import ResponsesRequest
from bastion.store.models import Interaction


@dataclass(frozen=True)
class DocumentOptions:
    """What of the configuration the document shows."""

    #: Off: credentials are optional (anonymous calls).
    auth_enabled: bool = True
    metrics_public: bool = False
    readyz_public: bool = False
    #: Models the examples name.
    chat_model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"

    @classmethod
    def of(cls, settings: Settings) -> DocumentOptions:
        chat = [model.name for model in settings.models if model.kind == "chat"]
        embedding = [model.name for model in settings.models if model.kind == "embedding"]
        return cls(
            auth_enabled=settings.auth.enabled,
            metrics_public=metrics_public(settings),
            readyz_public=readyz_details_public(settings),
            chat_model=chat[0] if chat else cls.chat_model,
            embedding_model=embedding[0] if embedding else cls.embedding_model,
        )


#: Every operation with credentials can be refused them (401), lack the role (403), or find the
#: credential store unreachable (503 ``auth_unavailable``).
AUTH_ERRORS = (401, 403, 503)

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted: it runs in the background",
    400: "Invalid request (the message names the field)",
    401: "Missing or invalid credentials",
    402: "A spend budget would be exceeded",
    403: "The credential's role lacks the permission",
    404: "Not found (or in another tenant)",
    409: "Conflicts with existing data or state",
    410: "The session has ended or expired",
    413: "Request body too large",
    415: "Unsupported format or content type",
    422: "The upstream refused the request",
    429: "Rate limited; see Retry-After",
    502: "The upstream failed",
    503: "Unavailable (upstream, credential store or another dependency); see Retry-After",
    504: "The upstream timed out",
}

TAGS = [
    {"name": "OpenAI", "description": "OpenAI-compatible model endpoints."},
    {"name": "Anthropic", "description": "Anthropic-compatible Messages API."},
    {"name": "System", "description": "Liveness, readiness, metrics, this document."},
    {"name": "Admin: identity", "description": "Tenants, users, API keys and the audit log (docs/AUTH.md)."},
    {"name": "Admin: ledger", "description": "Recorded interactions (docs/LEDGER.md)."},
    {"name": "Admin: jobs", "description": "Background jobs: list, inspect, cancel, retry (docs/JOBS.md)."},
    {"name": "Admin: prompts", "description": "The prompt vault (docs/VAULT.md)."},
    {"name": "Admin: experiments", "description": "Experiments, results and client feedback (docs/EXPERIMENTS.md)."},
    {"name": "Agent sessions", "description": "Conversations on vault prompts (docs/SESSIONS.md)."},
    {"name": KNOWLEDGE_TAG, "description": KNOWLEDGE_TAG_DESCRIPTION},
    {"name": AGENTS_TAG, "description": AGENTS_TAG_DESCRIPTION},
    {"name": REDTEAM_TAG, "description": REDTEAM_TAG_DESCRIPTION},
    {
        "name": "Insights",
        "description": "Roll-ups over the ledger, seed 004's metrics, log ingestion (docs/INSIGHTS.md).",
    },
]

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`bst_...`) or, when `auth.jwt.enabled`, a JWT.",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An API key, as the Anthropic SDK sends it.",
    },
}
CREDENTIALS: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]

HEADERS = {
    "RequestId": {
        "description": "This request's id (also in the logs and the ledger).",
        "required": True,
        "schema": {"type": "string", "pattern": "^req_[0-9a-f]{24}$"},
    },
    "Overhead": {
        "description": "Milliseconds Bastion itself spent on the request (upstream time excluded).",
        "required": True,
        "schema": {"type": "string"},
    },
    "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
    "Cache": {
        "description": "What the response cache did (docs/CACHES.md); absent when the request was refused "
        "before the cache was consulted, or the cache is off.",
        "schema": {"type": "string", "enum": ["hit", "semantic-hit", "miss", "bypass"]},
    },
    "CacheSimilarity": {
        "description": "For a semantic-hit: the cosine similarity of the stored request that answered.",
        "schema": {"type": "string"},
    },
}
#: Operations answered through the response cache (they may carry ``x-bastion-cache``).
CACHED_PATHS = frozenset(
    {"/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions", "/v1/messages", "/v1/responses"}
)


def _header(name: str) -> dict[str, str]:
    return {"$ref": "#/components/headers/" + name}


def _header_refs(status: int, cached: bool = False) -> dict[str, Any]:
    headers = {"x-request-id": _header("RequestId"), "x-bastion-overhead-ms": _header("Overhead")}
    if status in (429, 503):
        headers["retry-after"] = _header("RetryAfter")
    if cached:
        headers["x-bastion-cache"] = _header("Cache")
        if status == 200:
            headers["x-bastion-cache-similarity"] = _header("CacheSimilarity")
    return headers


def components() -> dict[str, Any]:
    groups = [
        pydantic_components(
            [ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ModerationRequest, ResponsesRequest], "OpenAI"
        ),
        pydantic_components([MessagesRequest], "Anthropic"),
        pydantic_components([TenantCreate, TenantUpdate, UserCreate, UserUpdate, KeyCreate, KeyUpdate]),
        pydantic_components(RESPONSE_MODELS),
        pydantic_components(ANTHROPIC_RESPONSE_MODELS),
        pydantic_components(ADMIN_MODELS),
        _ledger_schemas(),
        stream_components(),
        responses_components(),
        files_components(),
        batch_components(),
        bulk_components(),
        knowledge_components(),
        agent_components(),
        analyzer_components(),
        review_components(),
        experiment_components(),
        insights_components(),
        redteam_components(),
    ]
    schemas: dict[str, Any] = {}
    for group in groups:
        for name, schema in group.items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two different schemas are named {name!r}")
            schemas[name] = schema
    return dict(sorted(schemas.items()))


def _ledger_schemas() -> dict[str, Any]:
    table = Interaction.__table__
    kind = {"object": {"const": "interaction"}}
    return {
        "InteractionSummary": table_schema(table, LIST_COLUMNS, kind),  # type: ignore[arg-type]
        "Interaction": table_schema(table, [c.name for c in table.columns], kind),  # type: ignore[arg-type]
        "InteractionList": {
            "type": "object",
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": ref("InteractionSummary")},
                "next_cursor": {"type": ["string", "null"]},
                "has_more": {"type": "boolean"},
            },
            "required": ["object", "data", "next_cursor", "has_more"],
            "additionalProperties": False,
        },
    }


def _parameter(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": param.where, "required": param.required, "schema": param.schema}
    if param.description:
        out["description"] = param.description
    return out


def _security(operation: Operation, options: DocumentOptions) -> list[Any]:
    if operation.access == "public":
        return []
    if operation.access == "metrics":
        return [] if options.metrics_public else CREDENTIALS
    if operation.access == "readyz":
        # No credential: the status alone; a credential asks for the details (and is checked).
        return [] if options.readyz_public else [{}, *CREDENTIALS]
    return CREDENTIALS if options.auth_enabled else [{}, *CREDENTIALS]


def _error_statuses(operation: Operation, options: DocumentOptions) -> set[int]:
    statuses = set(operation.errors)
    protected = {
        "key": True,
        "public": False,
        "metrics": not options.metrics_public,
        "readyz": not options.readyz_public,
    }
    if protected[operation.access]:
        statuses.update(AUTH_ERRORS)
    return statuses


def _responses(operation: Operation, error_statuses: set[int]) -> dict[str, Any]:
    error = ref("AnthropicError" if operation.dialect == "anthropic" else "Error")
    responses: dict[int, dict[str, Any]] = {}
    for status, content in operation.success.items():
        responses[status] = {"content": {media: {"schema": schema} for media, schema in content.items()}}
    for status in error_statuses:
        if status in responses:  # /readyz: 503 is "not ready" or "credential store unavailable"
            media = responses[status]["content"]["application/json"]
            media["schema"] = {"anyOf": [media["schema"], error]}
        else:
            responses[status] = {"content": {"application/json": {"schema": error}}}
    return {
        str(status): {
            "description": STATUS_TEXT[status],
            "headers": _header_refs(status, operation.path in CACHED_PATHS),
            **responses[status],
        }
        for status in sorted(responses)
    }


def _example(value: Any, options: DocumentOptions) -> Any:
    if isinstance(value, dict):
        return {key: _example(item, options) for key, item in value.items()}
    if isinstance(value, list):
        return [_example(item, options) for item in value]
    return {CHAT_MODEL: options.chat_model, EMBEDDING_MODEL: options.embedding_model}.get(value, value)


def _operation(operation: Operation, options: DocumentOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary, "tags": [operation.tag]}
    if operation.description:
        out["description"] = operation.description
    if operation.params:
        out["parameters"] = [_parameter(param) for param in operation.params]
    if operation.body:
        media: dict[str, Any] = {"schema": ref(operation.body)}
        if operation.example is not None:
            media["example"] = _example(operation.example, options)
        content = {operation.body_media: media}
        content.update({other: {"schema": ref(name)} for other, name in operation.other_bodies})
        out["requestBody"] = {"required": True, "content": content}
    out["security"] = _security(operation, options)
    out["responses"] = _responses(operation, _error_statuses(operation, options))
    return out


def _version() -> str:
    try:
        return version("bastion")
    except PackageNotFoundError:
        return "0.0.0"


def build_document(options: DocumentOptions) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, options)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion",
            "version": _version(),
            "description": "A secure, self-hosted AI gateway: OpenAI- and Anthropic-compatible model endpoints, "
            "and Bastion's own admin and agent-session API. Errors use the OpenAI shape "
            '(`{"error": {"message", "type", "param", "code"}}`) everywhere but `/v1/messages`, which '
            "answers in Anthropic's.",
        },
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": components(), "securitySchemes": SECURITY_SCHEMES, "headers": HEADERS},
    }


@functools.lru_cache(maxsize=8)
def document_json(options: DocumentOptions) -> bytes:
    """The document as JSON, built once per configuration (it takes tens of milliseconds)."""
    return orjson.dumps(build_document(options))
