"""Admission and settlement of one request against every rate limit and budget that applies.

``admit`` (before the upstream call): the caller's policy (cached per principal), a pre-flight
estimate (prompt tokens; cost = prompt x input price + max completion x output price), the
per-request cap, then one atomic admission in the store: record everywhere or nowhere. Budget
counters missing for the current window are seeded from the ledger first (once per window).

``settle`` (after the answer, cost stage done): the token estimate is replaced with the real count
and the reservation with the real cost. In memory that is immediate; on Redis it is queued to the
background settler, so the answer does not wait for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bastion.auth.principal import Principal
from bastion.config.errors import ConfigError
from bastion.config.settings import Settings
from bastion.errors import BastionError, BudgetExceeded, RateLimited
from bastion.limits.failover import REDIS_ERRORS, FailoverStore
from bastion.limits.headers import format_duration, rate_limit_headers
from bastion.limits.labels import ScopeLabels
from bastion.limits.memory import MemoryStore
from bastion.limits.metrics import RATE_REJECTIONS
from bastion.limits.plan import Admission, BudgetCharge, Decision, Outcome, Ticket
from bastion.limits.policy import Policy, PolicyCache
from bastion.limits.redis_store import RedisStore
from bastion.limits.seed import LedgerSeeder
from bastion.providers.base import Usage
from bastion.spend.estimate import answer_tokens, cache_breakpoints, completion_tokens, prompt_tokens
from bastion.spend.metrics import BUDGET_REJECTIONS
from bastion.spend.pricing import MICROS_PER_USD, to_micros
from bastion.spend.routes import RoutePricing
from bastion.spend.windows import Windows
from bastion.store.channel import RedisChannel
from bastion.store.db import Database

log = structlog.get_logger("bastion.limits")

_MAX_SEED_ROUNDS = 4


class LimitsService:
    def __init__(
        self,
        settings: Settings,
        pricing: RoutePricing,
        store: MemoryStore | FailoverStore | RedisStore,
        seeder: LedgerSeeder,
        *,
        windows: Windows | None = None,
        labels: ScopeLabels | None = None,
    ) -> None:
        self.settings = settings
        self.pricing = pricing
        self.store = store
        self.seeder = seeder
        self.windows = windows or Windows()
        self.policies = PolicyCache(settings)
        self.labels = labels or ScopeLabels(seeder.db)
        self.default_completion_tokens = settings.budgets.default_completion_tokens

    @classmethod
    def from_settings(cls, settings: Settings, pricing: RoutePricing, db: Database | None) -> LimitsService:
        return cls(settings, pricing, build_store(settings), LedgerSeeder(db))

    async def start(self) -> None:
        if not isinstance(self.store, MemoryStore):
            await self.store.start()

    async def stop(self) -> None:
        if not isinstance(self.store, MemoryStore):
            await self.store.stop()
            channel = self.redis_channel
            if channel is not None:
                await channel.aclose()

    @property
    def redis_channel(self) -> RedisChannel | None:
        store = self.store.primary if isinstance(self.store, FailoverStore) else self.store
        return store.channel if isinstance(store, RedisStore) else None

    # -- admission --------------------------------------------------------------------------------

    async def admit(
        self, request_id: str, principal: Principal | None, model: str, body: dict[str, Any], endpoint: str
    ) -> Ticket | None:
        """Admit the request or raise RateLimited (429), BudgetExceeded (402), LimiterUnavailable (503).

        None when no limit or budget applies to the caller; otherwise the ticket to settle."""
        policy = self.policies.get(principal)
        if policy.empty:
            return None
        admission = self._admission(request_id, model, body, endpoint, policy)
        decision = await self.store.admit(admission)
        rounds = 0
        while decision.outcome is Outcome.NEEDS_SEED:
            rounds += 1
            if rounds > _MAX_SEED_ROUNDS:
                raise BastionError("Budget state could not be initialised; retry shortly.", status=503)
            await self._seed(decision, admission)
            decision = await self.store.admit(admission)
        if decision.outcome is not Outcome.ADMITTED:
            raise await self._rejection(decision, admission)
        headers = rate_limit_headers(decision.requests, decision.tokens)
        assert decision.store is not None
        return Ticket(admission, decision.store, headers)

    def _admission(self, request_id: str, model: str, body: dict[str, Any], endpoint: str, policy: Policy) -> Admission:
        tokens = 0
        estimate = 0
        budgets = policy.budgets
        cap = policy.max_request_usd
        if budgets or cap is not None:
            price = self.pricing.for_alias(model)
            if not price.is_free:
                tokens = prompt_tokens(body, endpoint)
                completion = completion_tokens(body, price, self.default_completion_tokens, endpoint)
                marked, hour = cache_breakpoints(body) if endpoint == "chat" else (False, False)
                written = tokens if marked else 0  # every prompt token a cache write: the most it can cost
                estimate = to_micros(price.cost_usd(tokens, completion, 0, written, written if hour else 0))
                if cap is not None and estimate > to_micros(cap):
                    BUDGET_REJECTIONS.labels(budget="request", scope="request").inc()
                    raise BudgetExceeded(
                        f"Estimated cost of this request (${estimate / MICROS_PER_USD:.4f}: {tokens} prompt tokens "
                        f"and up to {completion} completion tokens of {model}) exceeds the per-request cap "
                        f"of ${cap:.2f}. Lower max_tokens or shorten the prompt."
                    )
        if policy.token_rules and not tokens:
            tokens = prompt_tokens(body, endpoint)
        charges: list[BudgetCharge] = []
        if budgets:
            windows = self.windows.current()
            for rule in budgets:
                window = windows[rule.period]
                charges.append(
                    BudgetCharge(rule, f"{rule.base_key}:{window.id}", estimate, window.start, window.expire_at)
                )
        return Admission(request_id, policy.request_rules, policy.token_rules, tokens, charges)

    async def _seed(self, decision: Decision, admission: Admission) -> None:
        charges = [admission.charges[i] for i in decision.missing]
        spent = await asyncio.gather(
            *(self.seeder.spent_usd(charge.rule.scope, charge.window_start) for charge in charges)
        )
        store = decision.store
        assert store is not None
        try:
            await store.seed([(charge, to_micros(usd)) for charge, usd in zip(charges, spent, strict=True)])
        except REDIS_ERRORS as exc:
            if not isinstance(self.store, FailoverStore):
                raise
            self.store.note_failure(exc)  # the next admission goes to the failure behaviour

    async def _rejection(self, decision: Decision, admission: Admission) -> BastionError:
        headers = rate_limit_headers(decision.requests, decision.tokens)
        outcome = decision.outcome
        retry = format_duration(decision.retry_after_s)
        if outcome is Outcome.REQUESTS:
            rule = admission.request_rules[decision.index]
            RATE_REJECTIONS.labels(limit="requests", scope=rule.scope.kind).inc()
            label = await self.labels.describe(rule.scope)
            return RateLimited(
                f"Rate limit reached for {label} on requests per minute (RPM): limit {rule.rpm}, used {rule.rpm}. "
                f"Please try again in {retry}.",
                retry_after_s=decision.retry_after_s,
                headers=headers,
            )
        if outcome in (Outcome.TOKENS, Outcome.TOKENS_TOO_LARGE):
            rule = admission.token_rules[decision.index]
            RATE_REJECTIONS.labels(limit="tokens", scope=rule.scope.kind).inc()
            label = await self.labels.describe(rule.scope)
            used = (rule.tpm or 0) - (decision.tokens.remaining if decision.tokens else 0)
            if outcome is Outcome.TOKENS_TOO_LARGE:
                message = (
                    f"Request too large for {label} on tokens per minute (TPM): limit {rule.tpm}, "
                    f"requested {admission.tokens}. Send a smaller request."
                )
            else:
                message = (
                    f"Rate limit reached for {label} on tokens per minute (TPM): limit {rule.tpm}, used {used}, "
                    f"requested {admission.tokens}. Please try again in {retry}."
                )
            return RateLimited(message, retry_after_s=decision.retry_after_s, headers=headers)
        charge = admission.charges[decision.index]
        budget = charge.rule
        BUDGET_REJECTIONS.labels(budget=budget.period, scope=budget.scope.kind).inc()
        label = await self.labels.describe(budget.scope)
        period = "day" if budget.period == "daily" else "month"
        return BudgetExceeded(
            f"{budget.period.capitalize()} budget of {label} (${budget.limit_usd:.2f}) would be exceeded: "
            f"${decision.spent / MICROS_PER_USD:.4f} spent and ${decision.reserved / MICROS_PER_USD:.4f} reserved "
            f"by requests in flight this {period} (UTC); this request is estimated at up to "
            f"${charge.estimate / MICROS_PER_USD:.4f}.",
            headers=headers,
        )

    # -- settlement -------------------------------------------------------------------------------

    @staticmethod
    def settle(
        ticket: Ticket, usage: Usage | None, output_text: list[str], cost_usd: float, error: BastionError | None
    ) -> None:
        """Settle an admitted request with its real tokens and cost; give errors their headers."""
        admission = ticket.admission
        actual_tokens = 0
        if admission.token_rules:
            if usage is not None:
                actual_tokens = usage.prompt_tokens + usage.completion_tokens
            elif output_text:  # a stream cut off before the provider reported usage
                actual_tokens = admission.tokens + answer_tokens(output_text)
        ticket.store.settle(admission, actual_tokens, to_micros(cost_usd))
        if error is not None and ticket.headers:
            for name, value in ticket.headers.items():
                error.headers.setdefault(name, value)


def build_store(settings: Settings) -> MemoryStore | FailoverStore:
    """The memory store, or Redis behind the configured failure behaviour (``limits.backend``)."""
    backend = settings.limits.backend
    if backend == "memory" or (backend == "auto" and not settings.redis_url):
        return MemoryStore()
    if not settings.redis_url:
        raise ConfigError("limits.backend: 'redis' needs redis_url (BASTION_REDIS_URL) to be set")
    # The limiter's own pipelined connection (not redis-py's pool): see channel.py for why.
    channel = RedisChannel.from_url(settings.redis_url or "", timeout_s=settings.limits.redis_timeout_s)
    primary = RedisStore(channel, reservation_ttl_s=settings.limits.reservation_ttl_s)
    return FailoverStore(primary, settings.limits.on_redis_failure, retry_s=settings.limits.redis_retry_s)
