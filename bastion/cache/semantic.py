"""The semantic index: per scope (tenant, model, system prompt, earlier messages and every other
keyed field; see ``keys.request_keys``), the unit vectors of the last user messages of stored
answers, searched with one numpy product. Bounded: ``max_entries_per_scope`` per scope (oldest
go first) and ``max_entries`` over all scopes (least recently used scopes go first).

A match must reach the cosine threshold AND pass ``polarity.compatible`` (negations, opposite
intent, numbers, names, word order). The index lives in process memory; the answers it points at
live in the cache's store under their exact keys, so an entry whose answer expired is a miss.

Embedding never runs on the event loop: ``Embed`` is the embedder's coroutine, which hands the
text to its worker thread.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.cache.polarity import Signature, same_order, signature, tokens
from bastion.config.cache_settings import SemanticCacheSettings

#: Texts to unit vectors and their token count (``bastion.local.embedder.Embedder.embed``).
Embed = Callable[[list[str]], Awaitable[tuple[list[list[float]], int]]]
#: MiniLM reads 256 word pieces including its two markers; a longer text is cut, so two texts
#: that differ only after the cut would look identical. They are never matched.
MAX_TOKENS = 254


@dataclass(slots=True)
class Query:
    """A request's last user message, embedded once for the lookup and the store after a miss."""

    text: str
    vector: Any  # numpy float32 array, unit length
    signature: Signature
    words: list[str]


@dataclass(slots=True)
class _Entry:
    key: str
    signature: Signature
    words: list[str]
    expires: float


@dataclass(slots=True)
class _Scope:
    entries: list[_Entry] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)
    matrix: Any = None  # stacked ``vectors``, rebuilt after a change

    def stacked(self) -> Any:
        if self.matrix is None:
            self.matrix = np.vstack(self.vectors)
        return self.matrix

    def remove(self, index: int) -> None:
        del self.entries[index]
        del self.vectors[index]
        self.matrix = None


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    similarity: float


class SemanticIndex:
    def __init__(
        self, embed: Embed, settings: SemanticCacheSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.embed = embed
        self.settings = settings
        self.clock = clock
        self.size = 0
        #: Matches above the threshold that the polarity check turned down (for /metrics).
        self.rejected = 0
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    async def query(self, text: str) -> Query | None:
        """The embedded query, or None when the text is too long to be matched safely."""
        if len(text) > self.settings.max_chars or not text.strip():
            return None
        vectors, token_count = await self.embed([text])
        if token_count > MAX_TOKENS or not vectors:
            return None
        vector = np.asarray(vectors[0], dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            return None
        return Query(text, vector / norm, signature(text), tokens(text))

    def nearest(self, scope_key: str, query: Query, threshold: float) -> tuple[Match | None, int]:
        """The most similar compatible entry at or above ``threshold``, and how many more similar
        ones the polarity check turned down."""
        scope = self._scopes.get(scope_key)
        if scope is None or not scope.entries:
            return None, 0
        self._scopes.move_to_end(scope_key)
        similarities = scope.stacked() @ query.vector
        order = np.argsort(-similarities)
        now = self.clock()
        rejected = 0
        for index in order:
            similarity = float(similarities[index])
            if similarity < threshold:
                break
            entry = scope.entries[int(index)]
            if entry.expires <= now:
                continue
            if entry.signature != query.signature or not same_order(entry.words, query.words):
                rejected += 1
                continue
            self.rejected += rejected
            return Match(entry.key, min(1.0, similarity)), rejected
        self.rejected += rejected
        return None, rejected

    def add(self, scope_key: str, query: Query, key: str, ttl_s: float) -> None:
        scope = self._scopes.get(scope_key)
        if scope is None:
            scope = self._scopes[scope_key] = _Scope()
        self._scopes.move_to_end(scope_key)
        now = self.clock()
        for index in range(len(scope.entries) - 1, -1, -1):  # the same key again, or expired ones
            entry = scope.entries[index]
            if entry.key == key or entry.expires <= now:
                scope.remove(index)
                self.size -= 1
        scope.entries.append(_Entry(key, query.signature, query.words, now + ttl_s))
        scope.vectors.append(query.vector)
        scope.matrix = None
        self.size += 1
        while len(scope.entries) > self.settings.max_entries_per_scope:
            scope.remove(0)
            self.size -= 1
        while self.size > self.settings.max_entries and len(self._scopes) > 1:
            _, oldest = self._scopes.popitem(last=False)
            self.size -= len(oldest.entries)

    def forget(self, scope_key: str, key: str) -> None:
        scope = self._scopes.get(scope_key)
        if scope is None:
            return
        for index in range(len(scope.entries) - 1, -1, -1):
            if scope.entries[index].key == key:
                scope.remove(index)
                self.size -= 1
