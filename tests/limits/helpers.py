"""Builders the limits tests share: settings, principals, admissions, request contexts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bastion.auth.principal import Principal, Role
from bastion.config.settings import Settings
from bastion.gateway.context import RequestContext, Timing
from bastion.limits.memory import MemoryStore
from bastion.limits.plan import Admission, BudgetCharge
from bastion.limits.policy import Policy, build_policy
from bastion.limits.redis_store import RedisStore

WINDOW_START = datetime(2025, 1, 1, tzinfo=UTC)


def settings(prefix: str = "bastion:", **sections: Any) -> Settings:
    """Settings with budgets off and no limits unless given (tests turn on what they test)."""
    data: dict[str, Any] = {
        "limits": {"redis_prefix": prefix},
        "budgets": {"max_request_usd": None, "daily_usd": {"tenant": None}},
        "local": {"enabled": False},
    }
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value}
    return Settings.model_validate(data)


def principal(
    *,
    tenant: str = "t1",
    key: str | None = "k1",
    user: str | None = None,
    key_settings: dict[str, Any] | None = None,
    user_settings: dict[str, Any] | None = None,
    tenant_settings: dict[str, Any] | None = None,
) -> Principal:
    return Principal(
        tenant_id=tenant,
        tenant_name=f"{tenant}-name",
        role=Role.SERVICE,
        key_id=key,
        user_id=user,
        key_settings=key_settings or {},
        user_settings=user_settings or {},
        tenant_settings=tenant_settings or {},
    )


def policy_for(prefix: str, who: Principal | None, **sections: Any) -> Policy:
    return build_policy(settings(prefix, **sections), who)


def admission(policy: Policy, *, tokens: int = 0, estimate: int = 0, request_id: str | None = None) -> Admission:
    expire_at = int(time.time()) + 3600
    charges = [
        BudgetCharge(rule, f"{rule.base_key}:20250101", estimate, WINDOW_START, expire_at) for rule in policy.budgets
    ]
    return Admission(
        request_id or "req_" + uuid.uuid4().hex[:24], policy.request_rules, policy.token_rules, tokens, charges
    )


async def settled(store: MemoryStore | RedisStore) -> None:
    """Wait (bounded) until the store has applied every settlement handed to it."""
    if isinstance(store, RedisStore):
        assert await store.settler.drain(5.0), "settlements were not applied within 5 s"


def context(model: str, body: dict[str, Any] | None = None, *, who: Principal | None = None) -> RequestContext:
    body = body if body is not None else {"model": model, "messages": [{"role": "user", "content": "Say hello."}]}
    ctx = RequestContext(
        request_id="req_" + uuid.uuid4().hex[:24],
        dialect="openai",
        endpoint="chat",
        body=body,
        model=model,
        timing=Timing(),
    )
    ctx.principal = who
    return ctx
