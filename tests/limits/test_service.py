"""The limits service in-process: policies from settings and per-entity overrides, the per-request
cap, refusals (status, dialect fields, messages, headers), settlement, and budgets seeded from the
ledger on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.config.settings import Settings
from bastion.errors import BudgetExceeded, RateLimited, UpstreamError
from bastion.gateway.context import RequestContext
from bastion.gateway.stages.limits import LimitsStage
from bastion.limits.memory import MemoryStore
from bastion.limits.policy import build_policy
from bastion.limits.seed import LedgerSeeder
from bastion.limits.service import LimitsService
from bastion.providers.base import Usage
from bastion.routing.build import build_router
from bastion.spend.routes import RoutePricing
from bastion.spend.windows import Windows
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.limits.helpers import context, principal

MODELS = [
    {"name": "mini", "deployments": [{"provider": "openai", "model": "gpt-4o-mini", "id": "d-mini"}]},
    {"name": "opus", "deployments": [{"provider": "anthropic", "model": "claude-3-opus-20240229", "id": "d-opus"}]},
    {"name": "free", "deployments": [{"provider": "openai", "model": "house-llm", "id": "d-free"}]},
]


def service(db: Database | None = None, clock: Any = None, **sections: Any) -> LimitsService:
    settings = Settings.model_validate({"local": {"enabled": False}, "models": MODELS, **sections})
    pricing = RoutePricing.from_settings(settings, build_router(settings))
    windows = Windows(clock) if clock is not None else None
    return LimitsService(settings, pricing, MemoryStore(), LedgerSeeder(db), windows=windows)


async def admit(svc: LimitsService, ctx: RequestContext) -> None:
    """Admission as the pipeline runs it: through the limits stage."""
    await LimitsStage(svc).on_request(ctx)


async def settle(svc: LimitsService, ctx: RequestContext) -> None:
    await LimitsStage(svc).on_complete(ctx)


def test_seed_defaults_are_fifty_cents_per_request_and_100_dollars_per_tenant_day() -> None:
    policy = build_policy(Settings(), principal(user="u1"))
    assert policy.max_request_usd == 0.50
    assert [(b.scope.kind, b.period, b.limit_usd) for b in policy.budgets] == [("tenant", "daily", 100.0)]
    assert not policy.request_rules and not policy.token_rules


def test_entities_override_the_defaults() -> None:
    settings = Settings.model_validate(
        {"limits": {"key": {"rpm": 60}, "tenant": {"tpm": 10_000}}, "budgets": {"max_request_usd": 0.5}}
    )
    who = principal(
        user="u1",
        key_settings={"rpm": 5, "daily_usd": 2.0, "max_request_usd": 0.1},
        user_settings={"monthly_usd": 30, "rpm": None},
        tenant_settings={"tpm": 500, "max_request_usd": 1.0},
    )
    policy = build_policy(settings, who)
    assert [(r.scope.kind, r.rpm) for r in policy.request_rules] == [("key", 5)]
    assert [(r.scope.kind, r.tpm) for r in policy.token_rules] == [("tenant", 500)]
    budgets = {(b.scope.kind, b.period): b.limit_usd for b in policy.budgets}
    assert budgets == {("key", "daily"): 2.0, ("user", "monthly"): 30.0, ("tenant", "daily"): 100.0}
    assert policy.max_request_usd == 0.1  # the key's, the most specific
    # Without a key setting, the tenant's cap applies; turning budgets off drops them all.
    assert build_policy(settings, principal(tenant_settings={"max_request_usd": 1.0})).max_request_usd == 1.0
    off = Settings.model_validate({"budgets": {"enabled": False}, "limits": {"enabled": False}})
    assert build_policy(off, who).empty


async def test_success_carries_rate_limit_headers_and_settles() -> None:
    svc = service(limits={"key": {"rpm": 10, "tpm": 1000}})
    ctx = context("mini", who=principal())
    await admit(svc, ctx)
    headers = ctx.response_headers
    assert headers is not None
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    estimated = 1000 - int(headers["x-ratelimit-remaining-tokens"])
    assert 0 < estimated < 50
    ctx.usage = Usage(prompt_tokens=300, completion_tokens=200)
    await settle(svc, ctx)
    follow = context("mini", who=principal())
    await admit(svc, follow)
    assert follow.response_headers is not None
    remaining = int(follow.response_headers["x-ratelimit-remaining-tokens"])
    assert remaining == 1000 - 500 - estimated


async def test_rate_limited_is_a_429_with_retry_after_and_headers() -> None:
    svc = service(limits={"key": {"rpm": 1}})
    await admit(svc, context("mini", who=principal()))
    with pytest.raises(RateLimited) as caught:
        await admit(svc, context("mini", who=principal()))
    error = caught.value
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "60"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per minute (RPM): limit 1" in error.message and "key k1" in error.message


async def test_per_request_cap_refuses_before_anything_is_recorded() -> None:
    svc = service(limits={"key": {"rpm": 1}})
    big = context("opus", {"model": "opus", "max_tokens": 8000, "messages": [{"role": "user", "content": "Hi"}]})
    big.principal = principal()
    with pytest.raises(BudgetExceeded) as caught:
        await admit(svc, big)
    error = caught.value
    assert error.status == 402 and error.error_type == "budget_exceeded" and error.code == "budget_exceeded"
    assert "per-request cap of $0.50" in error.message and "$0.60" in error.message  # 8000 x $75/M
    # Nothing was recorded: the one request of this minute is still available.
    await admit(svc, context("mini", who=principal()))


async def test_a_key_may_raise_its_own_cap() -> None:
    svc = service()
    big = context("opus", {"model": "opus", "max_tokens": 8000, "messages": [{"role": "user", "content": "Hi"}]})
    big.principal = principal(key_settings={"max_request_usd": 1.0})
    await admit(svc, big)


async def test_daily_budget_refusal_names_the_budget_and_releases_on_settle() -> None:
    svc = service(budgets={"daily_usd": {"key": 0.01}})
    body = {"model": "mini", "max_tokens": 10_000, "messages": [{"role": "user", "content": "Hi"}]}
    first = context("mini", dict(body), who=principal())
    await admit(svc, first)  # reserves ~$0.006 (10,000 x $0.60/M plus the prompt)
    with pytest.raises(BudgetExceeded) as caught:
        await admit(svc, context("mini", dict(body), who=principal()))
    message = caught.value.message
    assert message.startswith("Daily budget of key k1 ($0.01) would be exceeded")
    assert "reserved by requests in flight" in message
    # The first request really cost almost nothing: its reservation goes, its cost stays.
    first.usage, first.cost_usd = Usage(prompt_tokens=10, completion_tokens=5), 0.000_01
    await settle(svc, first)
    await admit(svc, context("mini", dict(body), who=principal()))


async def test_free_models_need_no_estimate_and_pass_budgets() -> None:
    svc = service(budgets={"daily_usd": {"key": 0.000_001}})
    for _ in range(3):
        ctx = context("free", who=principal())
        await admit(svc, ctx)
        assert ctx.limits is not None and ctx.limits.admission.tokens == 0  # not even counted


async def test_settling_an_error_gives_it_the_rate_limit_headers() -> None:
    svc = service(limits={"tenant": {"rpm": 5}})
    ctx = context("mini", who=principal())
    await admit(svc, ctx)
    ctx.error, ctx.status = UpstreamError("upstream failed"), 502
    await settle(svc, ctx)
    assert ctx.error.headers["x-ratelimit-limit-requests"] == "5"
    assert ctx.error.headers["x-ratelimit-remaining-requests"] == "4"


async def test_auth_off_limits_the_default_tenant() -> None:
    svc = service(limits={"tenant": {"rpm": 2}})
    await admit(svc, context("mini"))
    await admit(svc, context("mini"))
    with pytest.raises(RateLimited, match="tenant default"):
        await admit(svc, context("mini"))


async def test_budgets_are_seeded_from_the_ledger(database: Database) -> None:
    """Spend survives a restart: a fresh process starts the window from the ledger's records."""
    now = datetime.now(UTC)
    async with database.transaction() as session:
        for i, (key_id, cost, age) in enumerate(
            [
                ("k1", 0.004, timedelta(0)),
                ("k1", 0.004, timedelta(0)),
                ("k2", 0.5, timedelta(0)),
                ("k1", 5.0, timedelta(days=40)),
            ]
        ):
            session.add(
                Interaction(
                    id=f"req_seed_{i}",
                    tenant_id="t1",
                    key_id=key_id,
                    created_at=now - age,
                    endpoint="chat",
                    dialect="openai",
                    model="mini",
                    status=200,
                    cost_usd=cost,
                )
            )
    svc = service(database, budgets={"daily_usd": {"key": 0.01}, "monthly_usd": {"tenant": 0.6}})
    body = {"model": "mini", "max_tokens": 2000, "messages": [{"role": "user", "content": "Hi"}]}
    # Key k1 spent $0.008 today: a request estimated at ~$0.0012 fits, a second does not.
    await admit(svc, context("mini", dict(body), who=principal(key="k1")))
    with pytest.raises(BudgetExceeded, match=r"Daily budget of key k1 \(\$0.01\)") as caught:
        await admit(svc, context("mini", dict(body), who=principal(key="k1")))
    assert "$0.0080 spent" in caught.value.message
    # The tenant's month holds k2's $0.50 too (not the 40-day-old record): $0.6 is nearly gone.
    with pytest.raises(BudgetExceeded, match="Monthly budget of tenant t1-name"):
        await admit(
            svc,
            context("mini", {**body, "max_tokens": 200_000}, who=principal(key="k3", key_settings={"daily_usd": 1.0})),
        )


@pytest.mark.parametrize(
    ("control", "input_factor"),
    [(None, 1.0), ({"type": "ephemeral"}, 1.25), ({"type": "ephemeral", "ttl": "1h"}, 2.0)],
)
async def test_a_prompt_marked_for_the_cache_is_estimated_as_a_cache_write(
    control: dict[str, str] | None, input_factor: float
) -> None:
    """Writing the prompt to the cache costs more than input: the pre-flight prices the most it can cost."""
    svc = service()
    text = "x" * 30_000  # 10,000 tokens by the pre-flight's measure (3 bytes a token)
    part: dict[str, Any] = {"type": "text", "text": text, **({"cache_control": control} if control else {})}
    body = {"model": "opus", "max_tokens": 1, "messages": [{"role": "system", "content": [part]}, {"role": "user"}]}
    ctx = context("opus", body)
    ctx.principal = principal(key_settings={"daily_usd": 5.0})
    await admit(svc, ctx)
    assert ctx.limits is not None
    tokens = ctx.limits.admission.tokens
    assert tokens > 10_000
    # claude-3-opus: $15/M input, $75/M output; estimates are in micro-dollars.
    assert {charge.estimate for charge in ctx.limits.admission.charges} == {round(tokens * 15 * input_factor + 75)}
