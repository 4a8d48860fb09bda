"""What the response cache decided for one request: data only, carried by the request context
from the cache stage's lookup to its store after a miss (and read by the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bastion.cache.keys import RequestKeys

Outcome = Literal["hit", "semantic-hit", "miss", "bypass"]


@dataclass(slots=True)
class CacheState:
    outcome: Outcome
    #: The resolved model alias ("unrouted" when the name is unknown).
    model: str
    #: Why the cache was bypassed (``no-store``, ``random-sampling``, ...).
    reason: str | None = None
    keys: RequestKeys | None = None
    ttl_s: float = 0.0
    #: Store the answer after a miss (false for ``no-store``).
    store: bool = False
    #: The route uses the semantic cache and the caller did not opt out of it.
    semantic: bool = False
    threshold: float = 1.0
    #: ``Cache-Control: max-age``: the oldest answer the client accepts, in seconds.
    max_age_s: float | None = None
    #: The embedded last user message (``semantic.Query``), kept from the lookup for the store.
    query: Any = None
    similarity: float | None = None

    def to_ledger(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"cache": self.outcome}
        if self.reason is not None:
            entry["cache_reason"] = self.reason
        if self.similarity is not None:
            entry["cache_similarity"] = round(self.similarity, 4)
        return entry
