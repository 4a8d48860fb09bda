"""The router and circuit breaker alone, with scripted fake providers, a recorded ``sleep`` and an
injected clock: no network and no real waiting."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bastion.config.settings import DeploymentSettings, RouterSettings, TimeoutSettings
from bastion.errors import (
    BastionError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Deployment, Provider
from bastion.routing.breaker import BreakerState, CircuitBreaker
from bastion.routing.router import Router
from bastion.routing.strategies import LeastBusy, WeightedRandom
from bastion.routing.target import ModelGroup, Target
from bastion.routing.trace import RouteTrace

Outcome = ChatResponse | BaseException


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProvider(Provider):
    """Answers from a script of outcomes (then ``ok``); can hold calls open on a gate."""

    def __init__(self, deployment: Deployment, script: list[Outcome] | None = None) -> None:
        super().__init__(deployment)
        self.script = list(script or [])
        self.calls = 0
        self.gate: asyncio.Event | None = None
        #: For streams: how many chunks to send before failing (None: do not fail).
        self.fail_stream_after: int | None = None

    def _next(self) -> Outcome:
        self.calls += 1
        return self.script.pop(0) if self.script else ok(self.deployment.id)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        outcome = self._next()
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        outcome = self._next()
        if isinstance(outcome, BaseException):
            raise outcome
        for index in range(3):
            if self.fail_stream_after is not None and index == self.fail_stream_after:
                raise UpstreamError(f"{self.deployment.id} broke mid-stream")
            yield {"choices": [{"index": 0, "delta": {"content": f"{self.deployment.id}-{index}"}}]}


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read through a call: mypy keeps ``breaker.state`` narrowed after an
    ``assert ... is`` even across the calls that change it."""
    return breaker.state


def ok(name: str) -> ChatResponse:
    return ChatResponse(body={"choices": [{"message": {"content": name}}], "deployment": name})


def server_error(retry_after_s: float | None = None) -> UpstreamError:
    return UpstreamError("upstream answered 500", upstream_status=500, retry_after_s=retry_after_s)


class Harness:
    """A router over fake providers; ``sleeps`` records every back-off it asked for."""

    def __init__(
        self,
        models: dict[str, list[tuple[str, float]]],
        *,
        seed: int = 7,
        clock: Callable[[], float] | None = None,
        threshold: int = 3,
        cooldown_s: float = 10.0,
        **router_settings: Any,
    ) -> None:
        self.sleeps: list[float] = []
        self.clock = clock or FakeClock()
        self.providers: dict[str, FakeProvider] = {}
        self.targets: dict[str, Target] = {}
        groups: dict[str, ModelGroup] = {}
        for alias, deployments in models.items():
            targets = []
            for name, weight in deployments:
                deployment = Deployment(
                    id=name,
                    alias=alias,
                    settings=DeploymentSettings(provider="openai", model=name, weight=weight),
                    timeouts=TimeoutSettings(),
                )
                provider = FakeProvider(deployment)
                target = Target(deployment, provider, CircuitBreaker(name, threshold, cooldown_s, clock=self.clock))
                self.providers[name], self.targets[name] = provider, target
                targets.append(target)
            groups[alias] = ModelGroup(name=alias, kind="chat", targets=targets)
        settings = RouterSettings(**{"backoff_base_s": 0.5, "backoff_max_s": 4.0, **router_settings})
        self.router = Router(groups, settings, sleep=self._sleep, rng=random.Random(seed))

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def chat(self, model: str) -> tuple[ChatResponse, RouteTrace]:
        trace = RouteTrace()
        response = await self.router.chat(ChatRequest(body={"messages": []}, request_id="r"), model, trace)
        return response, trace

    async def stream(self, model: str) -> list[dict[str, Any]]:
        chunks: AsyncIterator[dict[str, Any]] = await self.router.stream(
            ChatRequest(body={}, request_id="r", stream=True), model, RouteTrace()
        )
        return [chunk async for chunk in chunks]


# -- strategies --------------------------------------------------------------------------------------


async def test_weighted_random_follows_the_weights() -> None:
    harness = Harness({"m": [("light", 1.0), ("heavy", 3.0)]}, seed=1234)
    picks: Counter[str] = Counter()
    for _ in range(4000):
        response, _trace = await harness.chat("m")
        picks[response.body["deployment"]] += 1
    assert abs(picks["heavy"] / 4000 - 0.75) < 0.03, picks
    # Seeded: the same seed gives the same sequence of picks.
    again = Harness({"m": [("light", 1.0), ("heavy", 3.0)]}, seed=1234)
    first = [(await again.chat("m"))[0].body["deployment"] for _ in range(50)]
    replay = Harness({"m": [("light", 1.0), ("heavy", 3.0)]}, seed=1234)
    assert first == [(await replay.chat("m"))[0].body["deployment"] for _ in range(50)]


def test_weighted_random_strategy_alone() -> None:
    harness = Harness({"m": [("a", 1.0), ("b", 2.0), ("c", 7.0)]})
    strategy = WeightedRandom(random.Random(5))
    candidates = list(harness.targets.values())
    picks = Counter(strategy.choose(candidates).id for _ in range(10_000))
    for name, share in (("a", 0.1), ("b", 0.2), ("c", 0.7)):
        assert abs(picks[name] / 10_000 - share) < 0.02, picks


async def test_least_busy_picks_the_idle_deployment() -> None:
    harness = Harness({"m": [("busy", 1.0), ("idle", 1.0)]}, strategy="least_busy")
    busy = harness.providers["busy"]
    busy.gate = asyncio.Event()
    # Pin the first call on "busy" (the only candidate while "idle" is briefly marked in flight).
    harness.targets["idle"].in_flight += 1
    pending = asyncio.ensure_future(harness.chat("m"))
    while busy.calls == 0:
        await asyncio.sleep(0)
    harness.targets["idle"].in_flight -= 1
    assert harness.targets["busy"].in_flight == 1
    for _ in range(20):
        response, _trace = await harness.chat("m")
        assert response.body["deployment"] == "idle"
    busy.gate.set()
    response, _trace = await pending
    assert response.body["deployment"] == "busy"
    assert harness.targets["busy"].in_flight == 0 and harness.targets["idle"].in_flight == 0


def test_least_busy_strategy_alone() -> None:
    harness = Harness({"m": [("a", 1.0), ("b", 1.0), ("c", 1.0)]})
    a, b, c = harness.targets.values()
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert LeastBusy(random.Random(1)).choose([a, b, c]) is b
    b.in_flight = 3
    assert LeastBusy(random.Random(1)).choose([a, b, c]) is c


# -- retries and back-off ----------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_exponential_bounds() -> None:
    router = Harness({"m": [("a", 1.0)]}, backoff_base_s=0.5, backoff_max_s=4.0).router
    for retry, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (8, 4.0)):
        samples = [router._backoff(retry) for _ in range(500)]
        assert all(0.0 <= s <= ceiling for s in samples), (retry, max(samples))
        # Full jitter: spread over the whole range, not bunched near the ceiling.
        assert min(samples) < 0.1 * ceiling and max(samples) > 0.9 * ceiling, retry
    mean_first = sum(router._backoff(1) for _ in range(2000)) / 2000
    mean_third = sum(router._backoff(3) for _ in range(2000)) / 2000
    assert 3 < mean_third / mean_first < 5, "the ceiling doubles per retry"


async def test_retries_sleep_with_growing_backoff_then_succeed() -> None:
    harness = Harness({"m": [("a", 1.0)]}, retries=3, threshold=10)
    harness.providers["a"].script = [server_error(), server_error(), server_error()]
    response, trace = await harness.chat("m")
    assert response.body["deployment"] == "a"
    assert harness.providers["a"].calls == 4 and trace.retries == 3
    assert [a.outcome for a in trace.attempts] == ["error", "error", "error", "ok"]
    assert len(harness.sleeps) == 3
    for retry, slept in enumerate(harness.sleeps, start=1):
        assert 0.0 <= slept <= 0.5 * 2 ** (retry - 1)


async def test_retries_exhausted_raise_the_last_error() -> None:
    harness = Harness({"m": [("a", 1.0)]}, retries=2, threshold=10)
    harness.providers["a"].script = [server_error(), server_error(), UpstreamTimeout("slow")]
    with pytest.raises(UpstreamTimeout):
        await harness.chat("m")
    assert harness.providers["a"].calls == 3


async def test_retry_prefers_a_deployment_that_has_not_failed() -> None:
    harness = Harness({"m": [("a", 1.0), ("b", 1.0)]}, retries=1)
    for name in ("a", "b"):
        harness.providers[name].script = [server_error()]
    with pytest.raises(UpstreamError):
        await harness.chat("m")
    assert harness.providers["a"].calls == 1 and harness.providers["b"].calls == 1


async def test_retry_after_is_honoured() -> None:
    harness = Harness({"m": [("a", 1.0)]}, backoff_base_s=0.01, backoff_max_s=0.01)
    harness.providers["a"].script = [server_error(retry_after_s=3.0)]
    response, _trace = await harness.chat("m")
    assert response.body["deployment"] == "a"
    assert harness.sleeps == [3.0]


async def test_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    harness = Harness({"m": [("a", 1.0)]}, max_retry_after_s=5.0)
    harness.providers["a"].script = [server_error(retry_after_s=60.0)]
    with pytest.raises(UpstreamError):
        await harness.chat("m")
    assert harness.providers["a"].calls == 1 and harness.sleeps == []


async def test_retry_after_does_not_delay_another_deployment() -> None:
    harness = Harness({"m": [("a", 1.0), ("b", 1.0)]}, retries=1, backoff_base_s=0.1, backoff_max_s=0.1)
    for name in ("a", "b"):
        harness.providers[name].script = [server_error(retry_after_s=20.0)]
    with pytest.raises(UpstreamError):
        await harness.chat("m")
    # The retry went to the other deployment, which the first one's Retry-After does not bind.
    assert harness.providers["a"].calls == 1 and harness.providers["b"].calls == 1
    assert len(harness.sleeps) == 1 and harness.sleeps[0] <= 0.1


@pytest.mark.parametrize("error", [InvalidRequest("bad"), InvalidRequest("too big", status=413)])
async def test_callers_fault_is_neither_retried_nor_held_against_the_deployment(error: BastionError) -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)]}, threshold=1, fallbacks={"m": ["n"]})
    harness.providers["a"].script = [error]
    with pytest.raises(InvalidRequest):
        await harness.chat("m")
    assert harness.providers["a"].calls == 1 and harness.providers["b"].calls == 0
    assert state_of(harness.targets["a"].breaker) is BreakerState.CLOSED


async def test_non_retryable_upstream_error_is_raised_at_once() -> None:
    harness = Harness({"m": [("a", 1.0)]})
    harness.providers["a"].script = [UpstreamError("answered 501", retryable=False, upstream_status=501)]
    with pytest.raises(UpstreamError):
        await harness.chat("m")
    assert harness.providers["a"].calls == 1


async def test_a_provider_bug_becomes_a_502_not_a_crash() -> None:
    harness = Harness({"m": [("a", 1.0)]})
    harness.providers["a"].script = [KeyError("oops")]
    with pytest.raises(UpstreamError) as caught:
        await harness.chat("m")
    assert caught.value.status == 502 and harness.providers["a"].calls == 1


async def test_unknown_model_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound):
        await Harness({"m": [("a", 1.0)]}).chat("nope")


# -- fallbacks ------------------------------------------------------------------------------------------


async def test_fallback_serves_when_the_alias_is_exhausted() -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)]}, retries=1, fallbacks={"m": ["n"]})
    harness.providers["a"].script = [server_error(), server_error()]
    response, trace = await harness.chat("m")
    assert response.body["deployment"] == "b"
    assert harness.providers["a"].calls == 2 and harness.providers["b"].calls == 1
    assert trace.alias == "n" and trace.deployment == "b"


async def test_fallback_chain_is_tried_in_order() -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)], "o": [("c", 1.0)]}, retries=0, fallbacks={"m": ["n", "o"]})
    harness.providers["a"].script = [server_error()]
    harness.providers["b"].script = [server_error()]
    response, _trace = await harness.chat("m")
    assert response.body["deployment"] == "c"


async def test_a_failure_after_fallbacks_names_every_upstream_and_its_answer() -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)]}, retries=1, fallbacks={"m": ["n"]})
    harness.providers["a"].script = [
        UpstreamError("upstream a answered with an error (500 server_error): boom", upstream_status=500),
        UpstreamTimeout("upstream a did not answer in time"),
    ]
    harness.providers["b"].script = [
        UpstreamError("upstream b is rate limiting (429 rate_limit_error): slow down", upstream_status=429),
        UpstreamUnavailable("upstream b is unavailable (503); its HTML error page is not shown"),
    ]
    with pytest.raises(UpstreamUnavailable) as caught:  # the last error's kind and status
        await harness.chat("m")
    assert caught.value.message == (
        "all 4 attempts failed: a (openai a): answered with an error (500 server_error): boom; "
        "a (openai a): did not answer in time; b (openai b): is rate limiting (429 rate_limit_error): slow down; "
        "b (openai b): is unavailable (503); its HTML error page is not shown"
    )


async def test_a_failure_summary_is_bounded_and_a_single_failure_keeps_its_message() -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)]}, retries=3, threshold=100, fallbacks={"m": ["n"]})
    harness.providers["a"].script = [UpstreamError("x" * 5000) for _ in range(4)]
    harness.providers["b"].script = [UpstreamError("y" * 5000) for _ in range(4)]
    with pytest.raises(UpstreamError) as caught:
        await harness.chat("m")
    assert len(caught.value.message) <= 1200 and caught.value.message.startswith("all 8 attempts failed: a (openai a)")
    assert str(caught.value) == caught.value.message

    single = Harness({"m": [("a", 1.0)]}, retries=0)
    single.providers["a"].script = [server_error()]
    with pytest.raises(UpstreamError) as caught:
        await single.chat("m")
    assert caught.value.message == "upstream answered 500"


# -- circuit breaker ---------------------------------------------------------------------------------------


def test_breaker_state_machine() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("d", failure_threshold=3, cooldown_s=10.0, clock=clock)
    assert state_of(breaker) is BreakerState.CLOSED and breaker.acquire()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success resets the count of consecutive failures
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allows() and not breaker.acquire()
    assert breaker.seconds_until_trial() == 10.0

    clock.advance(9.9)
    assert state_of(breaker) is BreakerState.OPEN and not breaker.acquire()
    clock.advance(0.1)
    assert state_of(breaker) is BreakerState.HALF_OPEN and breaker.seconds_until_trial() == 0.0
    assert breaker.acquire(), "one trial call after the cool-down"
    assert not breaker.acquire() and not breaker.allows(), "only one trial at a time"
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN, "a failed trial opens the breaker again"

    clock.advance(10.0)
    assert breaker.acquire()
    breaker.record_neutral()  # a cancelled trial says nothing about health: another may try
    assert state_of(breaker) is BreakerState.HALF_OPEN and breaker.acquire()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED and breaker.acquire() and breaker.acquire()


async def test_open_breaker_stops_calls_until_the_cool_down() -> None:
    clock = FakeClock()
    harness = Harness({"m": [("a", 1.0)]}, clock=clock, threshold=2, cooldown_s=5.0, retries=1)
    provider = harness.providers["a"]
    provider.script = [server_error(), server_error()]
    with pytest.raises(UpstreamError):
        await harness.chat("m")
    assert state_of(harness.targets["a"].breaker) is BreakerState.OPEN and provider.calls == 2
    with pytest.raises(UpstreamUnavailable) as caught:
        await harness.chat("m")
    assert caught.value.status == 503 and provider.calls == 2, "an open breaker lets nothing through"
    assert caught.value.retry_after_s == 5.0
    clock.advance(5.0)
    response, _trace = await harness.chat("m")
    assert response.body["deployment"] == "a" and provider.calls == 3
    assert state_of(harness.targets["a"].breaker) is BreakerState.CLOSED


async def test_open_breaker_sends_traffic_to_the_other_deployment() -> None:
    harness = Harness({"m": [("a", 1.0), ("b", 1.0)]}, threshold=1, retries=0)
    harness.targets["a"].breaker.record_failure()
    for _ in range(10):
        response, _trace = await harness.chat("m")
        assert response.body["deployment"] == "b"
    assert harness.providers["a"].calls == 0


async def test_open_breaker_falls_back() -> None:
    harness = Harness({"m": [("a", 1.0)], "n": [("b", 1.0)]}, threshold=1, fallbacks={"m": ["n"]})
    harness.targets["a"].breaker.record_failure()
    response, _trace = await harness.chat("m")
    assert response.body["deployment"] == "b" and harness.providers["a"].calls == 0


# -- streams -------------------------------------------------------------------------------------------------


async def test_stream_failure_before_the_first_chunk_is_retried() -> None:
    harness = Harness({"m": [("a", 1.0)]})
    harness.providers["a"].script = [server_error()]
    chunks = await harness.stream("m")
    assert len(chunks) == 3 and harness.providers["a"].calls == 2


async def test_stream_failure_after_the_first_chunk_is_not_retried() -> None:
    harness = Harness({"m": [("a", 1.0)]})
    provider = harness.providers["a"]
    provider.fail_stream_after = 1
    stream = await harness.router.stream(ChatRequest(body={}, request_id="r", stream=True), "m", RouteTrace())
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 1 and provider.calls == 1
    assert harness.targets["a"].in_flight == 0


# -- cancellation and timeouts --------------------------------------------------------------------------------


async def test_cancelled_back_off_releases_the_half_open_trial() -> None:
    # A tiny cool-down: the first failure opens the breaker and the retry finds it half-open,
    # takes the single trial slot, and waits its back-off, where the client goes away.
    harness = Harness({"m": [("a", 1.0)]}, clock=time.monotonic, threshold=1, cooldown_s=1e-9, retries=1)
    harness.providers["a"].script = [server_error()]
    sleeping = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    harness.router._sleep = sleep_forever
    task = asyncio.ensure_future(harness.chat("m"))
    await asyncio.wait_for(sleeping.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    breaker = harness.targets["a"].breaker
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.allows(), "the cancelled request kept the half-open trial slot forever"


async def test_a_provider_timeout_error_is_an_upstream_timeout() -> None:
    # asyncio.wait_for (the providers' total_s cap) raises the builtin TimeoutError.
    harness = Harness({"m": [("a", 1.0)]}, retries=1, threshold=10)
    harness.providers["a"].script = [TimeoutError(), TimeoutError()]
    with pytest.raises(UpstreamTimeout) as caught:
        await harness.chat("m")
    assert caught.value.status == 504
    assert harness.providers["a"].calls == 2, "a timeout is worth a retry"
