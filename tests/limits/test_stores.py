"""The store contract, run against the memory store and against the Lua scripts on the real Redis:
sliding windows (with an injected clock), all-or-nothing admission, token corrections, budget
reservations and settlement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bastion.limits.memory import MemoryStore
from bastion.limits.plan import Outcome
from bastion.limits.redis_store import RedisStore
from bastion.store.channel import RedisChannel
from tests.limits.conftest import REDIS_URL, FakeClock, redis_client
from tests.limits.helpers import admission, policy_for, principal, settled

Store = MemoryStore | RedisStore


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, clock: FakeClock, redis_prefix: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    async with redis_client(redis_prefix):
        channel = RedisChannel.from_url(REDIS_URL)
        redis_store = RedisStore(channel, clock=clock, reservation_ttl_s=900)
        await redis_store.start()
        try:
            yield redis_store
        finally:
            await redis_store.stop()
            await channel.aclose()


async def test_requests_per_minute_is_exact_and_retry_after_points_at_the_oldest_entry(
    store: Store, clock: FakeClock, redis_prefix: str
) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 3}))
    admitted = []
    for _ in range(3):
        decision = await store.admit(admission(policy))
        assert decision.outcome is Outcome.ADMITTED
        admitted.append(decision)
        clock.advance(10)
    # Remaining counts down; reset is when the oldest entry (t=0) leaves the window.
    assert [d.requests.remaining for d in admitted if d.requests] == [2, 1, 0]
    assert admitted[0].requests is not None and admitted[0].requests.reset_s == pytest.approx(60)
    assert admitted[2].requests is not None and admitted[2].requests.reset_s == pytest.approx(40)
    rejected = await store.admit(admission(policy))
    assert rejected.outcome is Outcome.REQUESTS
    assert rejected.retry_after_s == pytest.approx(30)  # now t=30, oldest t=0 leaves at t=60
    clock.advance(30)  # t=60: the first entry is exactly one window old and leaves
    assert (await store.admit(admission(policy))).outcome is Outcome.ADMITTED
    assert (await store.admit(admission(policy))).outcome is Outcome.REQUESTS


async def test_a_burst_straddling_a_minute_boundary_does_not_double_the_limit(
    store: Store, clock: FakeClock, redis_prefix: str
) -> None:
    """A fixed window would let 10 through at 0:59 and 10 more at 1:00; a sliding window does not."""
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 10}))
    clock.now = 1_700_000_059.5  # half a second before a minute boundary
    times: list[float] = []
    for _step in range(240):  # one request every 0.5 s for two minutes
        if (await store.admit(admission(policy))).outcome is Outcome.ADMITTED:
            times.append(clock.now)
        clock.advance(0.5)
    assert len(times) == 20  # 10 per 60 s, no more
    for start in times:
        in_window = [t for t in times if start <= t < start + 60]
        assert len(in_window) <= 10, f"{len(in_window)} requests in the minute from {start}"


async def test_admission_is_all_or_nothing_across_scopes(store: Store, redis_prefix: str) -> None:
    key_a = principal(key="ka", key_settings={"rpm": 5}, tenant_settings={"rpm": 3})
    key_b = principal(key="kb", key_settings={"rpm": 5}, tenant_settings={"rpm": 3})
    policy_a = policy_for(redis_prefix, key_a)
    policy_b = policy_for(redis_prefix, key_b)
    for _ in range(3):
        assert (await store.admit(admission(policy_a))).outcome is Outcome.ADMITTED
    refused = await store.admit(admission(policy_a))
    assert refused.outcome is Outcome.REQUESTS
    assert policy_a.request_rules[refused.index].scope.kind == "tenant"
    # The tenant is full for every key of it...
    assert (await store.admit(admission(policy_b))).outcome is Outcome.REQUESTS
    # ...and the refused requests were recorded nowhere: key b's own log is still empty.
    only_key_b = policy_for(redis_prefix, principal(key="kb", key_settings={"rpm": 5}, tenant="other"))
    decision = await store.admit(admission(only_key_b))
    assert decision.outcome is Outcome.ADMITTED
    assert decision.requests is not None and decision.requests.remaining == 4


async def test_headers_report_the_most_constraining_scope(store: Store, redis_prefix: str) -> None:
    who = principal(key_settings={"rpm": 100, "tpm": 1000}, tenant_settings={"rpm": 5, "tpm": 50_000})
    decision = await store.admit(admission(policy_for(redis_prefix, who), tokens=200))
    assert decision.outcome is Outcome.ADMITTED
    assert decision.requests is not None and (decision.requests.limit, decision.requests.remaining) == (5, 4)
    assert decision.tokens is not None and (decision.tokens.limit, decision.tokens.remaining) == (1000, 800)


async def test_tokens_per_minute_admits_on_the_estimate_and_settles_to_the_real_count(
    store: Store, clock: FakeClock, redis_prefix: str
) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"tpm": 100}))
    first = admission(policy, tokens=40)
    assert (await store.admit(first)).outcome is Outcome.ADMITTED
    clock.advance(5)
    assert (await store.admit(admission(policy, tokens=40))).outcome is Outcome.ADMITTED
    clock.advance(5)
    third = await store.admit(admission(policy, tokens=40))
    assert third.outcome is Outcome.TOKENS
    assert third.retry_after_s == pytest.approx(50)  # the first entry (t=0) must leave
    # The first request really used 10 tokens: 10 + 40 + 40 fits in 100.
    store.settle(first, 10, 0)
    await settled(store)
    decision = await store.admit(admission(policy, tokens=40))
    assert decision.outcome is Outcome.ADMITTED
    assert decision.tokens is not None and decision.tokens.remaining == 10
    # A request bigger than the whole limit can never pass.
    too_large = await store.admit(admission(policy, tokens=101))
    assert too_large.outcome is Outcome.TOKENS_TOO_LARGE


async def test_token_entries_leave_with_the_window(store: Store, clock: FakeClock, redis_prefix: str) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"tpm": 100}))
    assert (await store.admit(admission(policy, tokens=100))).outcome is Outcome.ADMITTED
    clock.advance(59.9)
    assert (await store.admit(admission(policy, tokens=1))).outcome is Outcome.TOKENS
    clock.advance(0.1)
    decision = await store.admit(admission(policy, tokens=60))
    assert decision.outcome is Outcome.ADMITTED
    assert decision.tokens is not None and decision.tokens.remaining == 40


async def test_budget_needs_a_seed_then_reserves_and_settles(store: Store, redis_prefix: str) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"daily_usd": 1.0}))
    first = admission(policy, estimate=300_000)
    needs = await store.admit(first)
    assert needs.outcome is Outcome.NEEDS_SEED and needs.missing == [0]
    await store.seed([(first.charges[0], 0)])
    assert (await store.admit(first)).outcome is Outcome.ADMITTED
    for _ in range(2):
        assert (await store.admit(admission(policy, estimate=300_000))).outcome is Outcome.ADMITTED
    # 900,000 reserved: another 300,000 would pass $1.00.
    refused = await store.admit(admission(policy, estimate=300_000))
    assert refused.outcome is Outcome.BUDGET
    assert (refused.spent, refused.reserved) == (0, 900_000)
    # The first one cost 100,000: spent 100,000 + reserved 600,000 + 300,000 = exactly $1.00.
    store.settle(first, 0, 100_000)
    await settled(store)
    assert (await store.admit(admission(policy, estimate=300_000))).outcome is Outcome.ADMITTED
    assert (await store.admit(admission(policy, estimate=1))).outcome is Outcome.BUDGET
    # A second seed never overwrites a live counter.
    await store.seed([(first.charges[0], 123)])
    refused = await store.admit(admission(policy, estimate=1))
    assert (refused.spent, refused.reserved) == (100_000, 900_000)


async def test_a_budget_refusal_records_no_request(store: Store, redis_prefix: str) -> None:
    who = principal(key_settings={"rpm": 2, "daily_usd": 0.5})
    policy = policy_for(redis_prefix, who)
    probe = admission(policy, estimate=600_000)
    await store.seed([(probe.charges[0], 0)])
    for _ in range(3):
        assert (await store.admit(admission(policy, estimate=600_000))).outcome is Outcome.BUDGET
    for _ in range(2):
        assert (await store.admit(admission(policy, estimate=1))).outcome is Outcome.ADMITTED
    assert (await store.admit(admission(policy, estimate=1))).outcome is Outcome.REQUESTS


async def test_concurrent_admissions_never_overshoot(store: Store, redis_prefix: str) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 100, "daily_usd": 1.0}))
    seed = admission(policy, estimate=30_000)
    await store.seed([(seed.charges[0], 0)])
    decisions = await asyncio.gather(*(store.admit(admission(policy, estimate=30_000)) for _ in range(500)))
    outcomes = [d.outcome for d in decisions]
    assert outcomes.count(Outcome.ADMITTED) == 33  # 33 x $0.03 = $0.99; a 34th would make $1.02
    assert outcomes.count(Outcome.BUDGET) == 500 - 33


async def test_settling_an_unknown_request_changes_nothing(store: Store, redis_prefix: str) -> None:
    policy = policy_for(redis_prefix, principal(key_settings={"tpm": 100, "daily_usd": 1.0}))
    real = admission(policy, tokens=50, estimate=500_000)
    await store.seed([(real.charges[0], 0)])
    assert (await store.admit(real)).outcome is Outcome.ADMITTED
    ghost = admission(policy, tokens=50, estimate=500_000)  # never admitted
    store.settle(ghost, 0, 0)
    await settled(store)
    refused = await store.admit(admission(policy, tokens=60, estimate=1))
    assert refused.outcome is Outcome.TOKENS
    refused = await store.admit(admission(policy, tokens=1, estimate=500_001))
    assert refused.outcome is Outcome.BUDGET and refused.reserved == 500_000


async def test_idle_scopes_are_forgotten(clock: FakeClock, redis_prefix: str) -> None:
    store = MemoryStore(clock=clock)
    for key in range(100):
        policy = policy_for(redis_prefix, principal(key=f"k{key}", key_settings={"rpm": 5, "tpm": 100}))
        assert (await store.admit(admission(policy, tokens=1))).outcome is Outcome.ADMITTED
    assert len(store._requests) == len(store._tokens) == 100
    clock.advance(61)
    busy = policy_for(redis_prefix, principal(key="busy", key_settings={"rpm": 10_000, "tpm": 1_000_000}))
    for _ in range(5000):  # more admissions than between two sweeps
        await store.admit(admission(busy, tokens=1))
    assert set(store._requests) == {busy.request_rules[0].requests_key}
    assert set(store._tokens) == {busy.token_rules[0].tokens_key}
