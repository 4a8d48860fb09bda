"""The response cache as the gateway runs it: one per process, built from settings.

``plan`` decides what a request may do with the cache (bypass, or look up and store under which
keys); ``lookup`` tries the exact key, then (semantic routes) the nearest compatible earlier
request; ``store`` keeps an answer that the caller's stages passed. A failing store (Redis down,
slow) never fails a request: the lookup is a miss and the error is counted and logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bastion.cache import answers
from bastion.cache.keys import KeyMaterial, request_keys, samples_randomly
from bastion.cache.metrics import CACHE_ERRORS, CACHE_LOOKUPS, CACHE_STORED, SEMANTIC_REJECTIONS
from bastion.cache.state import CacheState
from bastion.cache.store import CacheStore, MemoryStore, RedisStore
from bastion.config.cache_settings import CacheOverride, CacheSettings, ModelCacheSettings
from bastion.config.errors import ConfigError
from bastion.config.settings import Settings

if TYPE_CHECKING:  # numpy comes with the semantic index, imported only where a model uses it
    from bastion.cache.semantic import Embed, SemanticIndex

log = structlog.get_logger("bastion.cache")

SCOPES = ("tenant", "user", "key", "prompt")


@dataclass(frozen=True, slots=True)
class Route:
    """A model alias's effective cache settings."""

    enabled: bool
    semantic: bool
    threshold: float
    ttl_s: float


@dataclass(frozen=True, slots=True)
class CacheControl:
    no_store: bool = False
    no_cache: bool = False
    max_age_s: float | None = None


def cache_control(value: str | None) -> CacheControl:
    """The request's ``Cache-Control`` directives that the cache honours."""
    if not value:
        return CacheControl()
    no_store = no_cache = False
    max_age: float | None = None
    for part in value.lower().split(","):
        directive, _, argument = part.strip().partition("=")
        if directive == "no-store":
            no_store = True
        elif directive == "no-cache":
            no_cache = True
        elif directive == "max-age":
            try:
                max_age = max(0.0, float(argument.strip().strip('"')))
            except ValueError:
                continue
    return CacheControl(no_store, no_cache, max_age)


def resolve_override(layers: list[tuple[str, Any]]) -> tuple[bool, bool]:
    """(enabled, semantic allowed) from the scopes' ``cache`` entries, least specific first; a
    field that is not a boolean is ignored with a warning (prompt metadata is free-form)."""
    enabled = semantic = True
    for scope, layer in layers:
        if isinstance(layer, bool):  # "cache": false is read as {"enabled": false}
            layer = {"enabled": layer}
        if not isinstance(layer, Mapping):
            log.warning("cache_override_ignored", scope=scope, reason="not an object")
            continue
        for name in CacheOverride.model_fields:
            value = layer.get(name)
            if value is None:
                continue
            if not isinstance(value, bool):
                log.warning("cache_override_field_ignored", scope=scope, field=name)
                continue
            if name == "enabled":
                enabled = value
            else:
                semantic = value
    return enabled, semantic


def build_store(settings: Settings) -> CacheStore:
    cache = settings.cache
    backend = cache.backend
    if backend == "memory" or (backend == "auto" and not settings.redis_url):
        return MemoryStore(cache.max_entries, cache.max_bytes)
    if not settings.redis_url:
        raise ConfigError("cache.backend: 'redis' needs redis_url (BASTION_REDIS_URL) to be set")
    return RedisStore.from_url(settings.redis_url, cache.redis_prefix, cache.redis_timeout_s)


class ResponseCache:
    def __init__(
        self,
        settings: CacheSettings,
        models: Mapping[str, ModelCacheSettings],
        store: CacheStore,
        embed: Embed | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._routes = {
            name: Route(
                enabled=model.enabled,
                semantic=model.semantic and embed is not None,
                threshold=model.similarity_threshold or settings.semantic.threshold,
                ttl_s=model.ttl_s or settings.ttl_s,
            )
            for name, model in models.items()
        }
        self._default = Route(True, False, settings.semantic.threshold, settings.ttl_s)
        self.index: SemanticIndex | None = None
        if embed is not None and any(route.semantic for route in self._routes.values()):
            from bastion.cache.semantic import SemanticIndex

            self.index = SemanticIndex(embed, settings.semantic)
        self._warm: asyncio.Task[None] | None = None
        self._embed = embed
        self._embed_failure_logged = False

    @classmethod
    def from_settings(cls, settings: Settings, embed: Embed | None = None) -> ResponseCache:
        models = {model.name: model.cache for model in settings.models}
        semantic = any(model.cache.semantic for model in settings.models)
        return cls(settings.cache, models, build_store(settings), embed if semantic else None)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.index is not None and self._embed is not None:
            # Load the embedding model beside start-up, not inside the first semantic request.
            self._warm = asyncio.get_running_loop().create_task(self._warm_up(self._embed))

    @staticmethod
    async def _warm_up(embed: Embed) -> None:
        try:
            await embed(["warm up"])
        except Exception as exc:  # the semantic cache then misses; requests are unaffected
            log.warning("semantic_cache_unavailable", error=str(exc)[:200])

    async def stop(self) -> None:
        if self._warm is not None and not self._warm.done():
            self._warm.cancel()
            await asyncio.gather(self._warm, return_exceptions=True)
        await self.store.aclose()

    # -- per request ------------------------------------------------------------------------

    def route(self, model: str) -> Route:
        return self._routes.get(model, self._default)

    def plan(
        self,
        material: KeyMaterial,
        *,
        control: CacheControl,
        layers: list[tuple[str, Any]],
    ) -> CacheState:
        """What this request may do with the cache: a ``bypass`` (with its reason), or a ``miss``
        to be looked up (the outcome is set by ``lookup``)."""
        route = self.route(material.model)
        enabled, semantic_allowed = resolve_override(layers) if layers else (True, True)
        state = CacheState("bypass", material.model)
        if not route.enabled or not enabled:
            state.reason = "disabled"
        elif control.no_store:
            state.reason = "no-store"
        elif not self.settings.random_sampling and samples_randomly(material.body):
            state.reason = "random-sampling"
        if state.reason is not None:
            return state
        semantic = route.semantic and semantic_allowed and self.index is not None
        try:
            state.keys = request_keys(material, semantic=semantic)
        except TypeError:  # not encodable as canonical JSON (nested deeper than orjson goes): not cached
            state.reason = "unkeyable"
            return state
        state.semantic = semantic and state.keys.scope is not None
        state.threshold = route.threshold
        state.ttl_s = route.ttl_s
        state.store = True
        state.max_age_s = control.max_age_s
        if control.no_cache:
            state.reason = "no-cache"  # the answer is fetched afresh, and stored
            return state
        state.outcome = "miss"
        return state

    async def lookup(self, state: CacheState) -> dict[str, Any] | None:
        """The stored answer's body (``state.outcome`` becomes ``hit`` or ``semantic-hit``), or None."""
        keys = state.keys
        if keys is None or state.outcome != "miss":
            return None
        body = await self._get(keys.exact, state)
        CACHE_LOOKUPS.labels(kind="exact", result="hit" if body is not None else "miss").inc()
        if body is not None:
            state.outcome = "hit"
            return body
        if not state.semantic or self.index is None or keys.scope is None or keys.query is None:
            return None
        body = await self._semantic(state, self.index, keys.scope, keys.query)
        CACHE_LOOKUPS.labels(kind="semantic", result="hit" if body is not None else "miss").inc()
        if body is not None:
            state.outcome = "semantic-hit"
        return body

    async def _semantic(self, state: CacheState, index: SemanticIndex, scope: str, text: str) -> dict[str, Any] | None:
        try:
            query = await index.query(text)
        except Exception as exc:  # the embedder failed or is not installed: a miss
            CACHE_ERRORS.labels(store="embedder", operation="embed").inc()
            if not self._embed_failure_logged:  # once per process: it fails the same way every time
                self._embed_failure_logged = True
                log.warning("semantic_cache_embed_failed", error=str(exc)[:200])
            return None
        if query is None:
            return None
        state.query = query
        match, rejected = index.nearest(scope, query, state.threshold)
        if rejected:
            SEMANTIC_REJECTIONS.inc(rejected)
        if match is None:
            return None
        body = await self._get(match.key, state)
        if body is None:
            index.forget(scope, match.key)
            return None
        state.similarity = match.similarity
        return body

    async def _get(self, key: str, state: CacheState) -> dict[str, Any] | None:
        try:
            value = await self.store.get(key)
        except Exception as exc:
            CACHE_ERRORS.labels(store=self.store.name, operation="get").inc()
            log.warning("cache_lookup_failed", store=self.store.name, error=repr(exc)[:200])
            return None
        if value is None:
            return None
        decoded = answers.decode(value)
        if decoded is None:
            return None
        body, at = decoded
        if state.max_age_s is not None and at and _age(at) > state.max_age_s:
            return None
        return body

    async def put(self, state: CacheState, body: dict[str, Any]) -> bool:
        """Store a finished answer under the request's keys; False when it was not stored."""
        keys = state.keys
        if keys is None or not state.store or not answers.storable(body):
            return False
        try:
            value = answers.encode(body)
        except TypeError:  # an answer orjson cannot encode is simply not kept
            return False
        if len(value) > self.settings.max_entry_bytes:
            return False
        try:
            await self.store.set(keys.exact, value, state.ttl_s)
        except Exception as exc:
            CACHE_ERRORS.labels(store=self.store.name, operation="set").inc()
            log.warning("cache_store_failed", store=self.store.name, error=repr(exc)[:200])
            return False
        indexed = self.index is not None and state.semantic and keys.scope is not None and state.query is not None
        if indexed:
            assert self.index is not None and keys.scope is not None
            self.index.add(keys.scope, state.query, keys.exact, state.ttl_s)
        CACHE_STORED.labels(kind="semantic" if indexed else "exact").inc()
        return True


def _age(at: float) -> float:
    return time.time() - at
