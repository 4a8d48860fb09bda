"""What a cached answer is keyed on.

The key is a SHA-256 over a canonical JSON (sorted keys) of the tenant, the resolved model (the
alias group, so every alias of one model shares entries), the guard policy and vault prompt in
force, and the OpenAI-shaped body **minus an allow-list of fields that cannot change the answer**
(``NOT_KEYED``). Everything else is keyed: messages (system included), tools, tool_choice,
temperature, top_p, top_k, max_tokens, max_completion_tokens, stop, seed, n, response_format,
logit_bias, penalties, logprobs, provider extras, and any field a future API adds. A field wrongly
left in costs a miss; a field wrongly left out would serve a wrong answer, so the list is short.

The output guard's canary (planted in a system prompt per request) is replaced by a fixed marker
before hashing: it is random by design and says nothing about the answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

#: Request fields that never change what the model answers: transport (stream, stream_options),
#: bookkeeping (user, metadata, store, safety_identifier), the upstream's own prompt-cache routing
#: and the capacity tier. ``model`` is replaced by the resolved model.
NOT_KEYED = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)
KEY_VERSION = 1
_CANARY_MARK = b"<canary>"
_QUERY_MARK = "<semantic-query>"


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """Everything an answer depends on, as plain values."""

    tenant: str
    model: str
    body: dict[str, Any]
    #: The guard policy in force (its JSON), so an answer stored under a lenient policy is never
    #: served under a stricter one; the output guard also re-checks every cached answer.
    policy: str = ""
    prompt: str = ""
    text_completion: bool = False
    canary: str | None = None


@dataclass(frozen=True, slots=True)
class RequestKeys:
    exact: str
    #: The semantic scope (everything but the last user message) and that message's text; None when
    #: the request has no plain-text last user message.
    scope: str | None
    query: str | None


def _number(value: Any) -> Any:
    """``0.0`` and ``0`` mean the same to every sampling parameter (Anthropic's translation sends
    floats): integral floats of the top-level fields are keyed as integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def keyed_body(body: dict[str, Any]) -> dict[str, Any]:
    return {name: _number(value) for name, value in body.items() if name not in NOT_KEYED}


def _digest(material: KeyMaterial, body: dict[str, Any], kind: str) -> str:
    payload = orjson.dumps(
        {
            "v": KEY_VERSION,
            "kind": kind,
            "tenant": material.tenant,
            "model": material.model,
            "policy": material.policy,
            "prompt": material.prompt,
            "text_completion": material.text_completion,
            "body": body,
        },
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    if material.canary:
        payload = payload.replace(material.canary.encode(), _CANARY_MARK)
    return hashlib.sha256(payload).hexdigest()


def query_text(messages: Any) -> str | None:
    """The last message's text when it is a user message of text only; None otherwise."""
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def request_keys(material: KeyMaterial, *, semantic: bool) -> RequestKeys:
    """The exact key, and (``semantic``) the semantic scope and query text."""
    body = keyed_body(material.body)
    exact = _digest(material, body, "exact")
    if not semantic:
        return RequestKeys(exact, None, None)
    messages = body.get("messages")
    query = query_text(messages)
    if query is None:
        return RequestKeys(exact, None, None)
    assert isinstance(messages, list)
    scoped = {**body, "messages": [*messages[:-1], {**messages[-1], "content": _QUERY_MARK}]}
    return RequestKeys(exact, _digest(material, scoped, "semantic"), query)


def samples_randomly(body: dict[str, Any]) -> bool:
    """True when the answer is left to chance: temperature absent or above 0, without a seed."""
    if body.get("seed") is not None:
        return False
    temperature = body.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return True
    return temperature > 0
