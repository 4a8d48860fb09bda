"""One OpenAPI operation as data, and the helpers the operation tables are written with
(``operations.py``, ``batch_operations.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bastion.openapi.components import ref

Dialect = Literal["openai", "anthropic", "bastion"]
#: Stand-ins in examples for a chat and an embedding model the serving gateway has.
CHAT_MODEL = "<chat-model>"
EMBEDDING_MODEL = "<embedding-model>"
#: Who may call: any credential ("key"; the route checks the role), anyone ("public"), or the
#: operational endpoints, whose exposure is a setting (docs/AUTH.md).
Access = Literal["key", "public", "metrics", "readyz"]


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query"]
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    #: status -> media type -> schema
    success: dict[int, dict[str, dict[str, Any]]]
    body: str | None = None
    params: tuple[Param, ...] = ()
    #: Error statuses besides those every operation of its access kind can answer.
    errors: tuple[int, ...] = ()
    dialect: Dialect = "bastion"
    access: Access = "key"
    description: str = ""
    #: A request body that works (``CHAT_MODEL`` / ``EMBEDDING_MODEL`` become models this gateway serves).
    example: dict[str, Any] | None = None
    body_media: str = "application/json"
    #: Further media types the body may come in: (media type, schema name).
    other_bodies: tuple[tuple[str, str], ...] = ()


def json(name: str) -> dict[str, dict[str, Any]]:
    return {"application/json": ref(name)}


def json_or_stream(name: str, event: str) -> dict[str, dict[str, Any]]:
    """A JSON answer, or with ``"stream": true`` server-sent events (``event`` describes one)."""
    return {"application/json": ref(name), "text/event-stream": ref(event)}


# -- parameters ------------------------------------------------------------------------------------


def path(name: str, schema: dict[str, Any] | None = None, description: str = "") -> Param:
    return Param(name, "path", schema or {"type": "string", "minLength": 1}, description, required=True)


def query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> Param:
    return Param(name, "query", schema, description, required)


def page_params(max_limit: int, default: int) -> tuple[Param, ...]:
    return (
        query("limit", {"type": "integer", "minimum": 1, "maximum": max_limit}, f"Page size (default {default})."),
        query("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
    )
