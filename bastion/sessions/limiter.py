"""Message limits of agent sessions (seed 000): per agent per minute, per owner per hour.

Built on the limits package's sliding-window stores, so the semantics (exact sliding windows, one
atomic check-and-record, Redis's clock, fail open or closed when Redis is down) are the same as
for the gateway's own rate limits. A store has one window length, hence two stores: a 60 s one
for the agent and a 3600 s one for the owner. The backend follows ``limits.backend``: the memory
store for one process, Redis (exact across processes) when the gateway shares one.

Bulk submissions on sessions (``bulk.per_minute``, seed 000's "bulk operations: 5/minute") are
counted per owner in the 60 s store too, under keys of their own.

The two message admissions are made in turn, the agent's first. A message the owner's hourly
limit refuses has then taken one place in the agent's minute (it frees itself within 60 s); the
other order would let a burst on one agent eat places in the owner's hour, which last an hour.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.config.settings import Settings
from bastion.errors import RateLimited
from bastion.limits.failover import FailoverStore
from bastion.limits.headers import format_duration
from bastion.limits.memory import MemoryStore
from bastion.limits.plan import Admission, Outcome
from bastion.limits.policy import RateRule, Scope
from bastion.limits.redis_store import RedisStore
from bastion.store.channel import RedisChannel

AGENT_WINDOW_S = 60.0
OWNER_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose sessions these are: a user, or a key that has no user."""

    tenant_id: str
    kind: str  # "user" | "key"
    id: str
    #: How messages name it ("user ann@acme.test", "key bst_Ab12Cd34…").
    label: str


class SessionLimiter:
    def __init__(
        self,
        settings: Settings,
        agent_store: MemoryStore | FailoverStore,
        owner_store: MemoryStore | FailoverStore,
        channel: RedisChannel | None = None,
    ) -> None:
        self.agent_rpm = settings.sessions.agent_rpm
        self.owner_per_hour = settings.sessions.user_messages_per_hour
        self.bulk_per_minute = settings.bulk.per_minute
        self.prefix = settings.limits.redis_prefix + "sess:"
        self.agent_store = agent_store
        self.owner_store = owner_store
        self.channel = channel

    @classmethod
    def build(cls, settings: Settings) -> SessionLimiter:
        backend = settings.limits.backend
        if backend == "memory" or (backend == "auto" and not settings.redis_url) or not settings.redis_url:
            return cls(settings, MemoryStore(window_s=AGENT_WINDOW_S), MemoryStore(window_s=OWNER_WINDOW_S))
        limits = settings.limits
        # One pipelined connection for both stores (the limits package's own channel type).
        channel = RedisChannel.from_url(settings.redis_url, timeout_s=limits.redis_timeout_s)

        def store(window_s: float) -> FailoverStore:
            primary = RedisStore(channel, reservation_ttl_s=limits.reservation_ttl_s, window_s=window_s)
            fallback = MemoryStore(window_s=window_s)
            return FailoverStore(primary, limits.on_redis_failure, retry_s=limits.redis_retry_s, fallback=fallback)

        return cls(settings, store(AGENT_WINDOW_S), store(OWNER_WINDOW_S), channel)

    async def start(self) -> None:
        for store in (self.agent_store, self.owner_store):
            if isinstance(store, FailoverStore):
                await store.start()

    async def stop(self) -> None:
        for store in (self.agent_store, self.owner_store):
            if isinstance(store, FailoverStore):
                await store.stop()
        if self.channel is not None:
            await self.channel.aclose()

    async def admit(self, request_id: str, agent_id: str, owner: Owner) -> None:
        """Record one message for the agent and its owner, or raise RateLimited (429 + Retry-After)."""
        if self.agent_rpm:
            scope = Scope("key", agent_id, owner.tenant_id, f"agent session {agent_id}")
            await self._admit(self.agent_store, request_id, scope, self.agent_rpm, "minute")
        if self.owner_per_hour:
            scope = Scope("user" if owner.kind == "user" else "key", owner.id, owner.tenant_id, owner.label)
            await self._admit(self.owner_store, request_id, scope, self.owner_per_hour, "hour")

    async def admit_bulk(self, request_id: str, owner: Owner) -> None:
        """Record one bulk submission for its owner, or raise RateLimited (429 + Retry-After)."""
        if self.bulk_per_minute:
            scope = Scope("user" if owner.kind == "user" else "key", owner.id, owner.tenant_id, owner.label)
            await self._admit(
                self.agent_store,
                request_id,
                scope,
                self.bulk_per_minute,
                "minute",
                short="b",
                name="Bulk",
                what="bulk submissions",
            )

    async def _admit(
        self,
        store: MemoryStore | FailoverStore,
        request_id: str,
        scope: Scope,
        limit: int,
        per: str,
        *,
        short: str | None = None,
        name: str = "Message",
        what: str = "messages",
    ) -> None:
        if short is None:
            short = "a" if per == "minute" else f"{scope.kind[0]}"
        base = f"{self.prefix}{short}:{scope.tenant_id}:{scope.entity}"
        # The stores count ``rpm`` entries per their window: here that is per minute or per hour.
        rule = RateRule(scope, limit, None, base + ":r", base + ":t", base + ":ts")
        decision = await store.admit(Admission(request_id, (rule,), (), 0, []))
        if decision.outcome is not Outcome.ADMITTED:
            retry = decision.retry_after_s
            raise RateLimited(
                f"{name} limit reached for {scope.label}: {limit} {what} per {per}. "
                f"Please try again in {format_duration(retry)}.",
                retry_after_s=retry,
            )
