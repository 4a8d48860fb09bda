"""A client that goes away cancels the upstream call, streaming or not, in both dialects.

The fake upstream runs with aiohttp's handler cancellation, so the gateway closing its upstream
connection shows up there as a recorded disconnect, well before the fake would have finished.
"""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.helpers import ANTHROPIC_MESSAGES, USER_MESSAGES
from tests.support.fake_upstream import SLOW_STREAM_CHUNKS, SLOW_STREAM_INTERVAL_S, FakeUpstream, Received
from tests.support.polling import wait_until

SLOW_STREAM_S = SLOW_STREAM_CHUNKS * SLOW_STREAM_INTERVAL_S
DELAY_S = 5.0


def _disconnected(fake: FakeUpstream, model: str) -> Received:
    """Wait (bounded) until the fake saw the gateway drop ``model``'s call, and return it."""
    found = wait_until(lambda: fake.disconnects(model), timeout_s=3.0, what=f"upstream call of {model} cancelled")
    assert len(found) == 1 and fake.attempts(model) == 1
    return found[0]


def test_closing_an_openai_stream_cancels_the_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-slow-stream", ["slow_stream"])
    stream = openai_client.chat.completions.create(model="m-slow-stream", messages=USER_MESSAGES, stream=True)
    chunks = iter(stream)
    next(chunks), next(chunks)  # the stream is flowing
    closed_at = time.monotonic()
    stream.close()
    call = _disconnected(fake, "m-slow-stream")
    assert call.finished_at is None, "the upstream stream ran to its end"
    assert call.disconnected_at is not None and call.disconnected_at - closed_at < SLOW_STREAM_S / 2


def test_closing_an_anthropic_stream_cancels_the_upstream(
    fake: FakeUpstream, anthropic_client: anthropic.Anthropic
) -> None:
    fake.script("m-slow-stream", ["slow_stream"])
    with anthropic_client.messages.stream(model="m-slow-stream", max_tokens=64, messages=ANTHROPIC_MESSAGES) as stream:
        texts = iter(stream.text_stream)
        next(texts), next(texts)
    call = _disconnected(fake, "m-slow-stream")
    assert call.finished_at is None


def test_giving_up_on_a_slow_answer_cancels_the_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-slow", [f"ok:{DELAY_S}"])
    with pytest.raises(openai.APITimeoutError):
        openai_client.with_options(timeout=0.5).chat.completions.create(model="m-slow", messages=USER_MESSAGES)
    call = _disconnected(fake, "m-slow")
    assert call.finished_at is None
    # Cancelled right after the client left (0.5 s), long before the fake's 5 s delay ended.
    assert call.disconnected_at is not None and call.disconnected_at - call.at < DELAY_S / 2


def test_giving_up_on_a_slow_anthropic_answer_cancels_the_upstream(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("m-slow", [f"ok:{DELAY_S}"])
    body = {"model": "m-slow", "max_tokens": 16, "messages": USER_MESSAGES}
    with pytest.raises(httpx.ReadTimeout):
        http.post("/v1/messages", json=body, timeout=0.5)
    call = _disconnected(fake, "m-slow")
    assert call.disconnected_at is not None and call.disconnected_at - call.at < DELAY_S / 2


def test_closing_a_stream_cancels_an_anthropic_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("a-slow-stream", ["slow_stream"])
    stream = openai_client.chat.completions.create(model="a-slow-stream", messages=USER_MESSAGES, stream=True)
    chunks = iter(stream)
    next(chunks), next(chunks)
    stream.close()
    call = _disconnected(fake, "a-slow-stream")
    assert call.finished_at is None and call.dialect == "anthropic"


def _closed_requests(http: httpx.Client, model: str) -> float:
    """bastion_requests_total for ``model`` with nginx's 499 "client closed request" status."""
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "bastion_requests_total" and labels.get("model") == model and labels["status"] == "499":
                return float(sample.value)
    return 0.0


def test_disconnects_leave_no_stuck_state(fake: FakeUpstream, openai_client: openai.OpenAI, http: httpx.Client) -> None:
    closed_before = _closed_requests(http, "m-slow-stream")
    fake.script("m-slow-stream", ["slow_stream"])
    stream = openai_client.chat.completions.create(model="m-slow-stream", messages=USER_MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    _disconnected(fake, "m-slow-stream")
    # The call is accounted as closed by the client, no longer in flight, and the breaker is
    # untouched (a client leaving says nothing about the upstream's health).
    wait_until(lambda: _closed_requests(http, "m-slow-stream") == closed_before + 1, timeout_s=3, what="499 counted")
    deployment = http.get("/readyz").json()["deployments"]["m-slow-stream"]
    assert deployment["in_flight"] == 0 and deployment["circuit"] == "closed"
    completion = openai_client.chat.completions.create(model="m-slow-stream", messages=USER_MESSAGES)
    assert completion.choices[0].message.content
