"""Log ingestion (seed 004's ``POST /api/metrics/ingest``): interactions of applications that call
models directly, posted in an OpenAI-shaped form, become ledger records (endpoint ``external``)
that the roll-ups count like any other.

A record is validated here and turned into a journal record (the ledger stage's format); the API
hands it to the ledger writer, so it is journaled before the answer and written like any
interaction, content per the tenant's ledger mode. A record with the same client ``id`` posted
twice is stored once (its ledger id is derived from the tenant and that id).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.errors import InvalidRequest, RateLimited

ENDPOINT: Final = "external"
_TEXT = Annotated[str, Field(max_length=256)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PromptTokensDetails(_Open):
    cached_tokens: int = Field(0, ge=0)


class Usage(_Open):
    prompt_tokens: int = Field(0, ge=0, le=100_000_000)
    completion_tokens: int = Field(0, ge=0, le=100_000_000)
    prompt_tokens_details: PromptTokensDetails | None = None


class Message(_Open):
    content: Any = None


class Choice(_Open):
    message: Message | None = None
    finish_reason: str | None = Field(None, max_length=32)


class Response(_Open):
    """An OpenAI ``chat.completion`` (only what is recorded is read)."""

    model: _TEXT | None = None
    choices: list[Choice] = Field(default_factory=list, max_length=128)
    usage: Usage | None = None


class ErrorInfo(_Open):
    code: Annotated[str, Field(max_length=64)] | None = None
    message: Annotated[str, Field(max_length=4000)] | None = None


class ExternalRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="The caller's id for the interaction: posting it again stores nothing new."
    )
    created: float | datetime | None = Field(None, description="Unix seconds or ISO 8601; default: now.")
    model: Annotated[str, Field(min_length=1, max_length=256)]
    provider: _TEXT | None = None
    request: dict[str, Any] | None = Field(None, description="The chat-completions request (its messages).")
    response: Response | None = None
    usage: Usage | None = Field(None, description="When there is no response object.")
    status: int = Field(200, ge=100, le=599)
    error: ErrorInfo | None = None
    latency_ms: float = Field(0.0, ge=0, le=86_400_000)
    ttft_ms: float | None = Field(None, ge=0, le=86_400_000)
    cost_usd: float = Field(0.0, ge=0, le=1_000_000)
    stream: bool = False
    finish_reason: Annotated[str, Field(max_length=32)] | None = None
    prompt_id: Annotated[str, Field(max_length=128)] | None = None
    prompt_version: int | None = Field(None, ge=1, le=2_147_483_647)
    session_id: Annotated[str, Field(max_length=64)] | None = None
    metadata: dict[str, Any] | None = Field(None, description="Kept in the ledger's extra.")


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[ExternalRecord] = Field(min_length=1)


def parse(body: Any, max_records: int) -> list[ExternalRecord]:
    """The records of a request body, or a 400 naming the first problem."""
    if isinstance(body, dict) and isinstance(body.get("records"), list) and len(body["records"]) > max_records:
        raise InvalidRequest(f"Invalid request: at most {max_records} records per request.", param="records")
    try:
        return IngestBody.model_validate(body).records
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"Invalid request: {where}: {first['msg']}.", param=where or None) from None


def _timestamp(value: float | datetime | None, now: float) -> float:
    if value is None:
        return now
    try:
        ts = value.timestamp() if isinstance(value, datetime) else float(value)
    except (OverflowError, ValueError, OSError):
        ts = -1.0
    if not 0 < ts <= now + 300:
        raise InvalidRequest(
            "Invalid request: created must be a time after 1970 and not in the future.", param="created"
        )
    return ts


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def ledger_id(tenant_id: str, client_id: str | None) -> str:
    if client_id is None:
        return f"ext_{uuid.uuid4().hex}"
    return "ext_" + hashlib.sha256(f"{tenant_id}\x00{client_id}".encode()).hexdigest()[:40]


def to_record(
    item: ExternalRecord, *, tenant_id: str, key_id: str | None, user_id: str | None, mode: str, now: float
) -> dict[str, Any]:
    """The journal record (``bastion/gateway/stages/ledger.py: build_record``'s format) of one item."""
    usage = item.usage or (item.response.usage if item.response is not None else None) or Usage()
    choice = item.response.choices[0] if item.response is not None and item.response.choices else None
    finish = item.finish_reason or (choice.finish_reason if choice is not None else None)
    answer = _text(choice.message.content) if choice is not None and choice.message is not None else None
    messages = item.request.get("messages") if item.request is not None else None
    extra: dict[str, Any] = {"source": "ingest"}
    if item.provider:
        extra["provider"] = item.provider
    if item.metadata:
        extra["metadata"] = item.metadata
    if item.id is not None:
        extra["client_id"] = item.id
    return {
        "v": 1,
        "id": ledger_id(tenant_id, item.id),
        "ts": _timestamp(item.created, now),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "key_id": key_id,
        "endpoint": ENDPOINT,
        "dialect": "openai",
        "model": item.model,
        "deployment": None,
        "upstream_model": item.response.model if item.response is not None else None,
        "stream": item.stream,
        "status": item.status,
        "error_code": item.error.code if item.error is not None else None,
        "error_message": item.error.message if item.error is not None else None,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0,
        "tokens_estimated": False,
        "cost_usd": item.cost_usd,
        "latency_ms": item.latency_ms,
        "ttft_ms": item.ttft_ms,
        "retries": 0,
        "finish_reason": finish,
        "content_mode": mode,
        "request_messages": messages if mode != "metadata" else None,
        "response_text": answer if mode != "metadata" else None,
        "prompt_id": item.prompt_id,
        "prompt_version": item.prompt_version,
        "session_id": item.session_id,
        "flagged": False,
        "guard": None,
        "extra": extra,
    }


class IngestLimiter:
    """At most ``per_minute`` ingest requests per key in any 60 seconds (this process's count)."""

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def admit(self, key: str) -> None:
        now = self.clock()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - 60.0:
            seen.popleft()
        if len(seen) >= self.per_minute:
            retry = max(1, int(seen[0] + 60.0 - now) + 1)
            raise RateLimited(
                f"Rate limit reached: {self.per_minute} ingest requests per minute. Try again in {retry} s.",
                retry_after_s=retry,
            )
        seen.append(now)
        if len(self._seen) > 10_000:  # forget idle keys
            for name in [k for k, v in self._seen.items() if not v or v[-1] <= now - 60.0]:
                del self._seen[name]


__all__ = ["ENDPOINT", "IngestLimiter", "parse", "to_record"]
