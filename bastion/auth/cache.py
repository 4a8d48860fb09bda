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


class CredentialCache(dict[bytes, CachedCredential]):
    """A dict (so ``get`` on the hot path is the C implementation) with a bounded ``put``.

    Eviction is first in, first out: a dict keeps insertion order, so the first key is the oldest
    entry, and hits need no bookkeeping (an LRU would reorder on every request).
    """

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size

    def put(self, digest: bytes, entry: CachedCredential) -> None:
        if digest not in self and len(self) >= self.max_size:
            del self[next(iter(self))]
        self[digest] = entry

    def discard(self, digest: bytes) -> None:
        self.pop(digest, None)
