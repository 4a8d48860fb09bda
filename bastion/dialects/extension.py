"""Bastion's own request field, ``"bastion": {...}``, parsed once by the dialect layer.

It names a vault prompt (``prompt_id`` with a ``label`` or a ``version``) and the variables of its
user template, and may ask for retrieval (``knowledge``: collections, k, filters, mode, query,
threshold, mmr_lambda; docs/KNOWLEDGE.md, "Answers with citations"). It is never sent upstream:
the endpoint takes it out of the body and hands this typed object to the pipeline
(``RequestContext.extension``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidRequest

FIELD = "bastion"
#: The most sources one request may place in the context.
MAX_KNOWLEDGE_K = 20
MAX_KNOWLEDGE_COLLECTIONS = 10
KNOWLEDGE_MODES = ("bm25", "dense", "hybrid")
_KNOWLEDGE_KEYS = frozenset({"collections", "k", "filters", "mode", "query", "threshold", "mmr_lambda"})


@dataclass(frozen=True, slots=True)
class KnowledgeRequest:
    """Retrieval asked for by a request (``bastion.knowledge``) or a vault prompt (``metadata.knowledge``)."""

    collections: tuple[str, ...]
    k: int = 5
    filters: dict[str, Any] | None = None
    mode: str = "hybrid"
    #: What to search for instead of the last user message's text.
    query: str | None = None
    #: Least dense cosine similarity of a source (-1..1); None: none.
    threshold: float | None = None
    #: MMR re-ranking's lambda (0..1); None: no MMR.
    mmr_lambda: float | None = None


@dataclass(frozen=True, slots=True)
class BastionExtension:
    prompt_id: str | None = None
    label: str | None = None
    version: int | None = None
    #: As the client sent them; the vault validates names and values when it renders.
    variables: Any = None
    knowledge: KnowledgeRequest | None = None


def parse_extension(value: Any) -> BastionExtension | None:
    """The typed extension, or None when the request has none; 400 on a malformed one."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest("Invalid request: bastion must be an object.", param="bastion")
    prompt_id = value.get("prompt_id")
    if prompt_id is not None and (not isinstance(prompt_id, str) or not prompt_id):
        raise InvalidRequest("Invalid request: bastion.prompt_id must be a string.", param="bastion.prompt_id")
    label = value.get("label")
    if label is not None and not isinstance(label, str):
        raise InvalidRequest("Invalid request: bastion.label must be a string.", param="bastion.label")
    version = _version(value.get("version"))
    if label and version is not None:
        raise InvalidRequest("Invalid request: name a prompt label or a version, not both.", param="bastion")
    knowledge = parse_knowledge(value.get("knowledge"), "bastion.knowledge")
    return BastionExtension(prompt_id, label or None, version, value.get("variables"), knowledge)


def parse_knowledge(value: Any, param: str) -> KnowledgeRequest | None:
    """A ``knowledge`` object (``param`` names it in errors), or None when absent; 400 when malformed."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"Invalid request: {param} must be an object.", param=param)
    unknown = sorted(set(value) - _KNOWLEDGE_KEYS)
    if unknown:
        raise InvalidRequest(f"Invalid request: {param} has no field {unknown[0]!r}.", param=f"{param}.{unknown[0]}")
    collections = value.get("collections")
    if isinstance(collections, str):
        collections = [collections]
    if (
        not isinstance(collections, list)
        or not 1 <= len(collections) <= MAX_KNOWLEDGE_COLLECTIONS
        or not all(isinstance(name, str) and name for name in collections)
    ):
        raise InvalidRequest(
            f"Invalid request: {param}.collections must name 1 to {MAX_KNOWLEDGE_COLLECTIONS} collections.",
            param=f"{param}.collections",
        )
    k = value.get("k", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_KNOWLEDGE_K:
        raise InvalidRequest(
            f"Invalid request: {param}.k must be an integer from 1 to {MAX_KNOWLEDGE_K}.", param=f"{param}.k"
        )
    filters = value.get("filters")
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidRequest(f"Invalid request: {param}.filters must be an object.", param=f"{param}.filters")
    mode = value.get("mode", "hybrid")
    if mode not in KNOWLEDGE_MODES:
        raise InvalidRequest(
            f"Invalid request: {param}.mode must be one of bm25, dense, hybrid.", param=f"{param}.mode"
        )
    query = value.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise InvalidRequest(f"Invalid request: {param}.query must be a non-empty string.", param=f"{param}.query")
    threshold = _number(value.get("threshold"), -1.0, 1.0, f"{param}.threshold")
    mmr_lambda = _number(value.get("mmr_lambda"), 0.0, 1.0, f"{param}.mmr_lambda")
    return KnowledgeRequest(
        tuple(collections), k, dict(filters) if filters is not None else None, mode, query, threshold, mmr_lambda
    )


def _number(value: Any, low: float, high: float, param: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"Invalid request: {param} must be a number from {low:g} to {high:g}.", param=param)
    return float(value)


def _version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or int(value) < 1:
        raise InvalidRequest("Invalid request: bastion.version must be a positive integer.", param="bastion.version")
    return int(value)
