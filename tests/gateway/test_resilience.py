"""Retries, Retry-After, fallbacks, circuit breakers, timeouts and broken upstreams, end to end:
the real SDKs against the real gateway process, in front of the scriptable fake upstream."""

from __future__ import annotations

import math
import time

import anthropic
import httpx
import openai
import pytest

from tests.gateway.helpers import (
    ANTHROPIC_MESSAGES,
    USER_MESSAGES,
    assert_anthropic_error,
    assert_openai_error,
    assert_stamped,
)
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.gateway import (
    COOLDOWN_S,
    FAILURE_THRESHOLD,
    RETRIES,
    TIMEOUT_READ_S,
)
from tests.support.polling import wait_until

ATTEMPTS = RETRIES + 1


def _circuit(http: httpx.Client, deployment: str) -> str:
    return str(http.get("/readyz").json()["deployments"][deployment]["circuit"])


# -- retries ---------------------------------------------------------------------------------------


def test_500_500_ok_is_retried_to_success(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-retry", ["500", "500", "ok"])
    raw = openai_client.chat.completions.with_raw_response.create(model="m-retry", messages=USER_MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == answer_text("m-retry")
    assert fake.attempts("m-retry") == 3
    # The back-off between the attempts is upstream time, not Bastion's overhead.
    assert_stamped(raw.headers)


def test_stream_is_retried_before_its_first_byte(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-retry", ["500", "ok"])
    stream = openai_client.chat.completions.create(model="m-retry", messages=USER_MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == answer_text("m-retry")
    assert fake.attempts("m-retry") == 2


def test_retry_after_is_waited_for(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-retry-after", ["429:1", "ok"])
    started = time.monotonic()
    raw = openai_client.chat.completions.with_raw_response.create(model="m-retry-after", messages=USER_MESSAGES)
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == answer_text("m-retry-after")
    first, second = fake.requests("m-retry-after")
    # Retry-After: 1 means the second attempt may not start before a second has passed.
    assert second.at - first.at >= 0.95, second.at - first.at
    assert elapsed >= 0.95
    assert elapsed < 1.0 + 2.0, "waited far longer than Retry-After asked"
    # A whole second of waiting, yet Bastion's own overhead stays small: the wait is not overhead.
    assert_stamped(raw.headers)


def test_upstream_400_is_relayed_and_not_retried(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.default("m-400", "400")
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="m-400", messages=USER_MESSAGES)
    assert caught.value.status_code == 400
    # The SDK keeps the inner "error" object as ``body``.
    error = assert_openai_error({"error": caught.value.body})
    assert "fake upstream error 400" in error["message"]
    assert fake.attempts("m-400") == 1


def test_upstream_keeps_answering_429_is_relayed_with_retry_after(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.default("m-429", "429:1")
    response = http.post("/v1/chat/completions", json={"model": "m-429", "messages": USER_MESSAGES})
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "1"
    assert_openai_error(response.json())
    assert_stamped(response.headers)
    assert fake.attempts("m-429") == ATTEMPTS


def test_upstream_429_raises_rate_limit_error_in_the_sdk(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.default("m-429-sdk", "429:0")
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(model="m-429-sdk", messages=USER_MESSAGES)
    assert caught.value.status_code == 429


def test_upstream_429_in_the_anthropic_dialect(fake: FakeUpstream, anthropic_client: anthropic.Anthropic) -> None:
    fake.default("m-429-anthropic", "429:0")
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(model="m-429-anthropic", max_tokens=8, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 429
    assert_anthropic_error(caught.value.body, "rate_limit_error")
    assert fake.attempts("m-429-anthropic") == ATTEMPTS


def test_stream_failing_before_its_first_byte_gets_an_http_error(fake: FakeUpstream, http: httpx.Client) -> None:
    # Nothing was sent yet, so the client gets a proper status and JSON, not a 200 event stream.
    fake.default("m-stream-fail", "500")
    body = {"model": "m-stream-fail", "messages": USER_MESSAGES, "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert_openai_error(response.json())
    assert_stamped(response.headers)
    assert fake.attempts("m-stream-fail") == ATTEMPTS


# -- fallbacks and circuit breakers -------------------------------------------------------------------


def test_fallback_answers_when_the_alias_keeps_failing(
    fake: FakeUpstream, openai_client: openai.OpenAI, http: httpx.Client
) -> None:
    fake.default("m-fallback-a", "500")
    completion = openai_client.chat.completions.create(model="m-fallback-a", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == answer_text("m-fallback-b")
    assert fake.attempts("m-fallback-a") == ATTEMPTS
    assert fake.attempts("m-fallback-b") == 1
    # Those failures opened A's breaker, so the next request goes straight to the fallback.
    assert _circuit(http, "m-fallback-a") == "open"
    completion = openai_client.chat.completions.create(model="m-fallback-a", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == answer_text("m-fallback-b")
    assert fake.attempts("m-fallback-a") == ATTEMPTS
    assert fake.attempts("m-fallback-b") == 2


def test_circuit_breaker_opens_then_half_opens_then_closes(
    fake: FakeUpstream, openai_client: openai.OpenAI, http: httpx.Client
) -> None:
    assert FAILURE_THRESHOLD <= ATTEMPTS, "one request must be able to open the breaker"
    fake.default("m-breaker", "500")
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="m-breaker", messages=USER_MESSAGES)
    opened_at = time.monotonic()
    assert caught.value.status_code == 502
    assert fake.attempts("m-breaker") == FAILURE_THRESHOLD
    assert _circuit(http, "m-breaker") == "open"

    # Open: nothing else serves the alias, so the client gets 503 and the upstream sees nothing.
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="m-breaker", messages=USER_MESSAGES)
    assert caught.value.status_code == 503
    response = http.post("/v1/chat/completions", json={"model": "m-breaker", "messages": USER_MESSAGES})
    assert response.status_code == 503
    assert response.headers.get("retry-after") == str(math.ceil(COOLDOWN_S)), "when the trial will be let through"
    assert_openai_error(response.json())
    assert_stamped(response.headers)
    response = http.post("/v1/messages", json={"model": "m-breaker", "max_tokens": 8, "messages": USER_MESSAGES})
    assert response.status_code == 503
    assert_anthropic_error(response.json(), "overloaded_error")
    assert fake.attempts("m-breaker") == FAILURE_THRESHOLD
    ready = http.get("/readyz")
    assert ready.status_code == 503 and "m-breaker" in ready.json()["unavailable_models"]

    # After the cool-down one trial goes through; its failure opens the breaker again at once.
    wait_until(lambda: _circuit(http, "m-breaker") == "half_open", timeout_s=COOLDOWN_S + 4, what="half-open")
    assert time.monotonic() - opened_at >= COOLDOWN_S * 0.9
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="m-breaker", messages=USER_MESSAGES)
    reopened_at = time.monotonic()
    assert caught.value.status_code == 502
    assert fake.attempts("m-breaker") == FAILURE_THRESHOLD + 1, "only the single trial call may reach the upstream"
    assert _circuit(http, "m-breaker") == "open"

    # Next cool-down: the trial succeeds and closes the breaker.
    fake.default("m-breaker", "ok")
    wait_until(lambda: _circuit(http, "m-breaker") == "half_open", timeout_s=COOLDOWN_S + 4, what="half-open")
    assert time.monotonic() - reopened_at >= COOLDOWN_S * 0.9
    completion = openai_client.chat.completions.create(model="m-breaker", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == answer_text("m-breaker")
    assert fake.attempts("m-breaker") == FAILURE_THRESHOLD + 2
    assert _circuit(http, "m-breaker") == "closed"


# -- broken upstreams --------------------------------------------------------------------------------


def test_stream_cut_midway_is_reported_and_never_retried(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    # If the gateway wrongly replayed the stream, the retry would succeed and no error would show.
    fake.script("m-cut", ["cut"])
    received: list[str] = []
    with pytest.raises(openai.APIError):
        stream = openai_client.chat.completions.create(model="m-cut", messages=USER_MESSAGES, stream=True)
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello from ", "the bytes before the cut reach the client, nothing after"
    assert fake.attempts("m-cut") == 1


def test_upstream_timeout_is_504_and_the_timed_out_calls_are_dropped(
    fake: FakeUpstream, openai_client: openai.OpenAI
) -> None:
    fake.default("m-timeout", "timeout")
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="m-timeout", messages=USER_MESSAGES)
    assert caught.value.status_code == 504
    assert time.monotonic() - started >= ATTEMPTS * TIMEOUT_READ_S * 0.9
    assert fake.attempts("m-timeout") == ATTEMPTS
    # Each attempt's connection was closed by the gateway when its read timeout fired.
    wait_until(lambda: len(fake.disconnects("m-timeout")) == ATTEMPTS, timeout_s=5, what="timed-out calls closed")


def test_total_timeout_is_504_and_retried(fake: FakeUpstream, http: httpx.Client) -> None:
    # The cap on a whole non-streaming call (timeouts.total_s), not the per-read timeout.
    fake.default("m-total-timeout", "ok:5")
    response = http.post("/v1/chat/completions", json={"model": "m-total-timeout", "messages": USER_MESSAGES})
    assert response.status_code == 504
    assert_openai_error(response.json())
    assert fake.attempts("m-total-timeout") == ATTEMPTS
    wait_until(lambda: len(fake.disconnects("m-total-timeout")) == ATTEMPTS, timeout_s=5, what="calls dropped")


def test_malformed_json_is_retried_then_502(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.default("m-malformed", "malformed")
    response = http.post("/v1/chat/completions", json={"model": "m-malformed", "messages": USER_MESSAGES})
    assert response.status_code == 502
    error = assert_openai_error(response.json())
    assert "malformed" in error["message"]
    assert_stamped(response.headers)
    assert fake.attempts("m-malformed") == ATTEMPTS


def test_upstream_errors_in_the_anthropic_dialect(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.default("m-malformed-anthropic", "malformed")
    body = {"model": "m-malformed-anthropic", "max_tokens": 16, "messages": USER_MESSAGES}
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 502
    assert_anthropic_error(response.json(), "api_error")
    assert_stamped(response.headers)


def test_anthropic_sdk_sees_a_cut_stream_as_an_error(fake: FakeUpstream, anthropic_client: anthropic.Anthropic) -> None:
    fake.script("m-cut", ["cut"])
    # The error surfaces while iterating, after the first events arrived.
    with (
        pytest.raises(anthropic.APIError),
        anthropic_client.messages.stream(model="m-cut", max_tokens=16, messages=ANTHROPIC_MESSAGES) as stream,
    ):
        for _text in stream.text_stream:
            pass
    assert fake.attempts("m-cut") == 1


# -- the native Anthropic provider in front of the fake's Messages API --------------------------------


def test_anthropic_upstream_retried_and_translated(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("a-retry", ["500", "529", "ok"])
    completion = openai_client.chat.completions.create(model="a-retry", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == answer_text("a-retry")
    requests = fake.requests("a-retry")
    assert len(requests) == 3 and {r.dialect for r in requests} == {"anthropic"}


def test_anthropic_upstream_400_relayed_once(fake: FakeUpstream, anthropic_client: anthropic.Anthropic) -> None:
    fake.default("a-400", "400")
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(model="a-400", max_tokens=16, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 400
    assert fake.attempts("a-400") == 1


def test_anthropic_upstream_cut_stream_not_retried(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("a-cut", ["cut"])
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in openai_client.chat.completions.create(model="a-cut", messages=USER_MESSAGES, stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello from "
    assert fake.attempts("a-cut") == 1
