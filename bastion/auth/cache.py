"""The per-process credential cache: SHA-256 of a credential -> what it resolved to.

Bounded (oldest entries go first) and short-lived (``auth.cache_ttl_s``). An entry is trusted only
while the auth epoch it was verified under is still current (see ``epoch.py``), and a credential's
own expiry is checked on every hit, so neither revocation nor expiry waits for the TTL.

Refusals are cached too (``principal is None``): a flood of requests with an unknown or revoked key
must not turn into a flood of database queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.auth.principal import Principal


@dataclass(slots=True)
class CachedCredential:
    #: None for a refusal, whose reason is ``refusal``.
    principal: Principal | None
    refusal: str | None
    #: The epoch this was verified under; compared by equality on every hit.
    epoch: object
    #: ``time.monotonic()`` after which the entry is re-verified regardless of the epoch.
    fresh_until: float
    #: ``time.time()`` at which the credential itself expires (key ``expires_at``, JWT ``exp``).
    expires_at: float | None = None


class CredentialCache:
    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # A dict keeps insertion order, so the first key is the oldest entry: FIFO eviction with no
        # bookkeeping on hits (an LRU would reorder on every request).
        self._entries: dict[bytes, CachedCredential] = {}

    def get(self, digest: bytes) -> CachedCredential | None:
        return self._entries.get(digest)

    def put(self, digest: bytes, entry: CachedCredential) -> None:
        entries = self._entries
        if digest not in entries and len(entries) >= self.max_size:
            del entries[next(iter(entries))]
        entries[digest] = entry

    def discard(self, digest: bytes) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
