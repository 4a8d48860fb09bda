"""Which rate limits and budgets apply to a caller: resolved once per principal and cached.

Defaults come from ``limits.{key,user,tenant}`` and ``budgets.{daily_usd,monthly_usd}.{key,user,tenant}``;
each tenant, user and key may override them in its ``settings`` dict (``rpm``, ``tpm``,
``daily_usd``, ``monthly_usd``; ``max_request_usd`` on any of them, the most specific winning).
A positive number replaces the default for that entity; an unset field keeps the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bastion.config.settings import Settings
from bastion.spend.pricing import to_micros
from bastion.spend.windows import PERIODS, Period

ScopeKind = Literal["key", "user", "tenant"]
_SHORT = {"key": "k", "user": "u", "tenant": "t"}


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    #: The key's, user's or tenant's id (what the ledger records).
    entity: str
    tenant_id: str
    #: How messages name it: "key bst_abc123…", "user 9f2c…", "tenant acme".
    label: str


@dataclass(frozen=True, slots=True)
class RateRule:
    scope: Scope
    #: Per minute; None: not limited on that dimension.
    rpm: int | None
    tpm: int | None
    #: Storage keys: the request log, the token log and the token log's running sum.
    requests_key: str
    tokens_key: str
    tokens_sum_key: str


@dataclass(frozen=True, slots=True)
class BudgetRule:
    scope: Scope
    period: Period
    limit_usd: float
    limit_micros: int
    #: Storage key without the window id (appended per window).
    base_key: str


@dataclass(frozen=True, slots=True)
class Policy:
    request_rules: tuple[RateRule, ...]
    token_rules: tuple[RateRule, ...]
    budgets: tuple[BudgetRule, ...]
    max_request_usd: float | None

    @property
    def empty(self) -> bool:
        return not (self.request_rules or self.token_rules or self.budgets or self.max_request_usd)


def _override(entity_settings: Mapping[str, Any] | None, name: str, default: Any) -> Any:
    """The entity's own positive number for ``name`` if it sets one, else ``default``."""
    if not entity_settings:
        return default
    value = entity_settings.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return default  # unset (the admin API drops nulls) or not a usable limit
    return value


def _key_label(principal: Any) -> str:
    prefix = getattr(principal, "key_prefix", None)
    if prefix:
        return f"key {prefix}…"
    return f"key {principal.key_id}"


def scopes_of(principal: Any, default_tenant: str) -> list[tuple[Scope, Mapping[str, Any]]]:
    """(scope, its settings dict) for the key, user and tenant of ``principal``, most specific first.
    With auth off there is no principal: the default tenant is the only scope."""
    if principal is None:
        return [(Scope("tenant", default_tenant, default_tenant, f"tenant {default_tenant}"), {})]
    tenant_id = str(principal.tenant_id)
    scopes: list[tuple[Scope, Mapping[str, Any]]] = []
    if principal.key_id:
        scopes.append((Scope("key", str(principal.key_id), tenant_id, _key_label(principal)), principal.key_settings))
    if principal.user_id:
        label = f"user {getattr(principal, 'user_email', None) or principal.user_id}"
        scopes.append((Scope("user", str(principal.user_id), tenant_id, label), principal.user_settings))
    tenant_label = f"tenant {principal.tenant_name or tenant_id}"
    scopes.append((Scope("tenant", tenant_id, tenant_id, tenant_label), principal.tenant_settings))
    return scopes


def build_policy(settings: Settings, principal: Any) -> Policy:
    prefix = settings.limits.redis_prefix
    request_rules: list[RateRule] = []
    token_rules: list[RateRule] = []
    budgets: list[BudgetRule] = []
    max_request: Any = settings.budgets.max_request_usd
    scopes = scopes_of(principal, settings.auth.default_tenant)
    for scope, entity_settings in scopes:
        base = f"{prefix}rl:{_SHORT[scope.kind]}:{scope.entity}"
        if settings.limits.enabled:
            defaults = getattr(settings.limits, scope.kind)
            rpm = _override(entity_settings, "rpm", defaults.rpm)
            tpm = _override(entity_settings, "tpm", defaults.tpm)
            if rpm or tpm:
                rule = RateRule(
                    scope,
                    int(rpm) if rpm else None,
                    int(tpm) if tpm else None,
                    base + ":r",
                    base + ":t",
                    base + ":ts",
                )
                if rule.rpm:
                    request_rules.append(rule)
                if rule.tpm:
                    token_rules.append(rule)
        if settings.budgets.enabled:
            for period in PERIODS:
                field = "daily_usd" if period == "daily" else "monthly_usd"
                default = getattr(getattr(settings.budgets, field), scope.kind)
                limit = _override(entity_settings, field, default)
                if limit:
                    budgets.append(
                        BudgetRule(
                            scope,
                            period,
                            float(limit),
                            to_micros(float(limit)),
                            f"{prefix}bu:{_SHORT[scope.kind]}:{scope.entity}:{period[0]}",
                        )
                    )
    if settings.budgets.enabled:
        # The most specific setting wins: key, then user, then tenant, then the configured default.
        for _scope, entity_settings in reversed(scopes):
            max_request = _override(entity_settings, "max_request_usd", max_request)
    else:
        max_request = None
    return Policy(tuple(request_rules), tuple(token_rules), tuple(budgets), float(max_request) if max_request else None)


class PolicyCache:
    """Policies by (tenant, user, key), reused while the auth layer hands out the same principal
    object (it caches them), rebuilt when it hands out a new one (settings may have changed)."""

    def __init__(self, settings: Settings, max_entries: int = 10_000) -> None:
        self.settings = settings
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, Any, Any], tuple[Any, Policy]] = {}

    def get(self, principal: Any) -> Policy:
        if principal is None:
            ident: tuple[Any, Any, Any] = (None, None, None)
        else:
            ident = (principal.tenant_id, principal.user_id, principal.key_id)
        entry = self._entries.get(ident)
        if entry is not None and entry[0] is principal:
            return entry[1]
        policy = build_policy(self.settings, principal)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[ident] = (principal, policy)
        return policy
