"""Settings of the response caches (docs/CACHES.md): the process-wide ``cache`` section, a model's
own ``cache`` entry, and the override that tenant, user and key settings and a vault prompt's
metadata may carry.

    cache.enabled            the exact cache, on by default (memory; Redis with redis_url)
    models[].cache           per model alias: exact on/off, the semantic cache (opt-in), threshold, TTL
    {tenant,user,key}.cache  {"enabled": false} opts a scope out; {"semantic": false} keeps it exact-only
    prompt metadata.cache    the same, for the requests of one vault prompt version
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bastion.config.section import Strict


class SemanticCacheSettings(Strict):
    """The nearest-neighbour lookup over the embedded MiniLM model, for models that opt in."""

    threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine similarity a stored request must reach to answer a new one."
    )
    max_entries_per_scope: int = Field(
        256, ge=1, description="Requests remembered per scope (tenant, model, system prompt and parameters)."
    )
    max_entries: int = Field(10_000, ge=1, description="Requests remembered over all scopes (oldest scopes go first).")
    max_chars: int = Field(
        2000,
        ge=1,
        description="Longer last user messages are never matched semantically (the model reads 256 word pieces).",
    )


class CacheSettings(Strict):
    """The exact response cache (and the defaults of the semantic one)."""

    enabled: bool = Field(True, description="Serve repeated deterministic requests from the cache.")
    backend: Literal["auto", "memory", "redis"] = Field(
        "auto", description="Where answers are kept; auto: Redis when redis_url is set, else process memory."
    )
    ttl_s: float = Field(300.0, gt=0, description="How long a stored answer is served.")
    random_sampling: bool = Field(
        False,
        description="Also cache requests that leave sampling random (temperature absent or above 0 without a seed).",
    )
    max_entries: int = Field(10_000, ge=1, description="Answers kept by the memory store (least recently used go).")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Memory the memory store's answers may take.")
    max_entry_bytes: int = Field(1024 * 1024, ge=256, description="Larger answers are not stored.")
    redis_prefix: str = Field("bastion:cache:", min_length=1, description="Prefix of the cache's Redis keys.")
    redis_timeout_s: float = Field(
        0.5, gt=0, description="Longest wait for Redis; a slower or failed lookup counts as a miss."
    )
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)


class ModelCacheSettings(Strict):
    """A model alias's own cache settings (``models[].cache``)."""

    enabled: bool = Field(True, description="Use the exact cache for this model.")
    semantic: bool = Field(False, description="Also answer from similar earlier requests (opt-in).")
    similarity_threshold: float | None = Field(
        None, gt=0, le=1, description="Overrides cache.semantic.threshold for this model."
    )
    ttl_s: float | None = Field(None, gt=0, description="Overrides cache.ttl_s for this model.")


class CacheOverride(Strict):
    """What a tenant, user, key or vault prompt may set (``settings.cache`` / ``metadata.cache``):
    later scopes win field by field (tenant <- user <- key <- prompt)."""

    enabled: bool | None = Field(None, description="false: never answered from or stored in the cache.")
    semantic: bool | None = Field(None, description="false: exact matches only, even where the model allows more.")
