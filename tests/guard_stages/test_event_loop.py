"""The guard never stalls the gateway: hostile answers and prompts through the real pipeline (in
process, so the gateway's event loop is this test's loop) while ``/healthz`` is polled beside them.

A poll that takes more than 100 ms means the loop was blocked that long by someone's request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from bastion.api.app import freeze_startup_heap, thaw_startup_heap
from bastion.guard.state import WITHHELD_MESSAGE
from tests.guard_stages.support import PROMPT, UPSTREAM, Caller, GuardEnv, GuardFake
from tests.guard_stages.test_output import stream_text

T = TypeVar("T")

STREAM_CHARS = 256 * 1024
PROMPT_CHARS = 4 * 1024 * 1024
MAX_LOOP_STALL_S = 0.1
HI = [{"role": "user", "content": "Please list the numbers."}]


@pytest.fixture(autouse=True)
def startup_heap_frozen(guard_env: GuardEnv) -> Iterator[None]:
    """The heap as the served gateway has it: its lifespan freezes what start-up built. The harness
    starts the gateway without the lifespan, and without this a full collection walks this whole test
    process (about 200 ms here, measured), which a 4 MB prompt's findings trigger on the loop."""
    freeze_startup_heap()
    yield
    thaw_startup_heap()


def number_list(size: int) -> str:
    """``,0000001,0000002,...``: what a model writes when asked for a long list (no whitespace at
    all); sent in 64-character pieces, each of which ends in a digit (a number still growing)."""
    return "".join(f",{number:07d}" for number in range(size // 8 + 1))[:size]


def long_token(size: int) -> str:
    """``x...x<n>``: one token of ``size`` characters ending in digits."""
    return "x" * (size - 6) + "123456"


def pii_dense(size: int) -> str:
    unit = "Call Maria on +44 20 7946 0958 or mail maria.lopes@gmail.com, card 4111 1111 1111 1111. "
    return (unit * (size // len(unit) + 1))[:size]


class HealthProbe:
    """Polls ``/healthz`` back to back and keeps the slowest answer's latency, and the longest the
    loop took to come back to the prober at all (a 5 ms sleep plus a poll: anything much longer
    means something held the loop)."""

    PAUSE_S = 0.005

    def __init__(self, env: GuardEnv) -> None:
        self.env = env
        self.worst = 0.0
        self.worst_round = 0.0
        self.polls = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            response = await self.env.client.get("/healthz")
            self.worst = max(self.worst, time.perf_counter() - started)
            self.polls += 1
            assert response.status_code == 200
            await asyncio.sleep(self.PAUSE_S)
            self.worst_round = max(self.worst_round, time.perf_counter() - started - self.PAUSE_S)

    def report(self) -> str:
        return f"longest round {self.worst_round * 1000:.0f} ms over {self.polls} polls"


@asynccontextmanager
async def probing(env: GuardEnv) -> AsyncIterator[HealthProbe]:
    probe = HealthProbe(env)
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(stop))
    await asyncio.sleep(0)  # the first poll is under way before the request under test starts
    try:
        yield probe
    finally:
        stop.set()
        await task


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - started


async def warm(env: GuardEnv, caller: Caller) -> None:
    """One ordinary request first: the test measures the hostile one, not first-use set-up."""
    response = await env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert response.status_code == 200, response.text


async def stream_answer(
    env: GuardEnv, fake: GuardFake, caller: Caller, answer: str
) -> tuple[list[str], list[str | None]]:
    fake.answer(UPSTREAM, answer, piece_chars=64)
    body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
    response, events = await env.stream(caller, "/v1/chat/completions", body)
    assert response.status_code == 200
    return stream_text(events)


# The scan budget's own behaviour is tested below; here a generous one, so that a slow machine's
# longer checks are not mistaken for the defect (on a quiet two-core machine the guard spends about
# 0.3 s checking the list, under the default 1 s).
@pytest.mark.parametrize("guard_overrides", [{"guard": {"policy": {"scan_budget_ms": 30_000}}}], ids=["budget"])
@pytest.mark.parametrize("make_answer", [number_list, long_token], ids=["1,2,3", "x...x<n>"])
async def test_a_long_whitespace_free_streamed_answer_flows_and_never_blocks_the_loop(
    guard_env: GuardEnv, guard_fake: GuardFake, make_answer: Callable[[int], str]
) -> None:
    caller = await guard_env.tenant()
    await warm(guard_env, caller)
    # A quarter of the answer first: the whole one must cost about four times as much, not sixteen.
    quarter = make_answer(STREAM_CHARS // 4)
    async with probing(guard_env):  # the prober costs the loop time too: both runs pay it
        (texts, _), quarter_elapsed = await timed(stream_answer(guard_env, guard_fake, caller, quarter))
    assert "".join(texts) == quarter
    answer = make_answer(STREAM_CHARS)
    async with probing(guard_env) as probe:
        (texts, finishes), elapsed = await timed(stream_answer(guard_env, guard_fake, caller, answer))
    print(
        f"stream {answer[:9]!r}: {elapsed:.2f} s (a quarter of it: {quarter_elapsed:.2f} s), "
        f"/healthz {probe.worst * 1000:.0f} ms, {probe.report()}"
    )
    assert "".join(texts) == answer  # nothing sensitive in it: released whole, not withheld
    assert finishes == ["stop"]
    # Text went out while the answer was still streaming: the hold is bounded, not the whole answer.
    assert len(texts) > 10 and max(map(len, texts)) < 32 * 1024
    # The client, the fake upstream and the gateway share this process and its event loop; the
    # exchange took 0.6-0.7 s for the list on a quiet two-core machine, two to three times that on
    # a slow one. The defect this guards against was quadratic (35 s): the cost must grow in
    # proportion to the answer, which holds on any machine (a linear cost gives a ratio near 4, 3.4-5.8
    # measured; a quadratic one 16).
    assert elapsed < 10 * quarter_elapsed, (
        f"{elapsed:.2f} s for {len(answer)} characters, {quarter_elapsed:.2f} s for a quarter"
    )
    assert elapsed < 15, f"{elapsed:.2f} s for {len(answer)} characters"
    assert probe.polls > 0 and probe.worst < MAX_LOOP_STALL_S, f"/healthz took {probe.worst * 1000:.0f} ms"
    # Between polls too: a burst of buffered chunks must not keep the loop (the router gives it back).
    assert probe.worst_round < MAX_LOOP_STALL_S, probe.report()


async def test_a_4mb_pii_dense_prompt_is_settled_quickly_without_blocking_the_loop(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    await warm(guard_env, caller)
    messages = [{"role": "user", "content": pii_dense(PROMPT_CHARS)}]
    async with probing(guard_env) as probe:
        response, elapsed = await timed(guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": messages}))
    print(f"4 MB prompt: {response.status_code} in {elapsed:.2f} s, /healthz {probe.worst * 1000:.0f} ms")
    print(probe.report())
    # Answered (redacted) or refused (the scan ran out of budget): either way, settled and recorded.
    assert response.status_code in (200, 400), response.text
    assert elapsed < 2.0, f"{elapsed:.2f} s for a {PROMPT_CHARS // 1024 // 1024} MB prompt"
    assert probe.polls > 0 and probe.worst < MAX_LOOP_STALL_S, f"/healthz took {probe.worst * 1000:.0f} ms"
    assert probe.worst_round < MAX_LOOP_STALL_S, probe.report()
    if response.status_code == 200:
        [request] = guard_fake.requests(UPSTREAM)[-1:]
        sent = request.body["messages"][-1]["content"]
        assert "maria.lopes@gmail.com" not in sent and "4111 1111 1111 1111" not in sent
    else:
        assert response.json()["error"]["code"] == "content_blocked"
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is True


def budget_overrides(action: str) -> dict[str, Any]:
    return {"guard": {"policy": {"scan_budget_ms": 20, "scan_budget_action": action}}}


@pytest.mark.parametrize("guard_overrides", [budget_overrides("block")], ids=["block"])
async def test_a_prompt_over_the_scan_budget_is_refused_and_the_ledger_says_why(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    messages = [{"role": "user", "content": pii_dense(1024 * 1024)}]
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "content_blocked"
    assert guard_fake.requests(UPSTREAM) == []  # refused before anything was spent
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    budget = row["guard"]["input"]["scanners"]["scan_budget"]
    assert budget == {"score": 1.0, "flagged": True, "action": "block", "findings": {"SCAN_BUDGET_EXCEEDED": 1}}


@pytest.mark.parametrize("guard_overrides", [budget_overrides("flag")], ids=["flag"])
async def test_in_flag_mode_a_prompt_over_the_budget_goes_through_flagged(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    big = pii_dense(1024 * 1024)
    messages = [{"role": "user", "content": big}]
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": messages})
    assert response.status_code == 200, response.text
    [request] = guard_fake.requests(UPSTREAM)
    assert request.body["messages"][-1]["content"] == big  # not checked in time: sent as it was
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is True
    assert row["guard"]["input"]["scanners"]["scan_budget"]["action"] == "flag"


@pytest.mark.parametrize("guard_overrides", [budget_overrides("block")], ids=["block"])
async def test_a_stream_over_the_scan_budget_is_stopped(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, pii_dense(STREAM_CHARS), piece_chars=64)
    body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
    response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
    assert response.status_code == 200
    texts, finishes = stream_text(events)
    received = "".join(texts)
    assert received.endswith(WITHHELD_MESSAGE) and finishes == ["content_filter"]
    assert len(received) < STREAM_CHARS // 2
    assert "maria.lopes@gmail.com" not in received
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["guard"]["output"]["scanners"]["scan_budget"]["flagged"] is True
