"""Limits and spend through a real gateway: rate-limit headers on every kind of response (JSON,
stream, Anthropic, embeddings, errors), refusals in both dialects, the cost of streams in the
ledger, and the gateway's behaviour when Redis is unreachable (fail open or closed, no crash)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.limits.gateway_load import EMBED_MODEL, FREE_BODY, FREE_MODEL, PRICED_BODY, PRICED_MODEL, limits_config
from tests.support.cluster import Cluster, ClusterFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import free_port

RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


@pytest.fixture
def limits_gateway(gateway_cluster: ClusterFactory, fake: FakeUpstream, redis_prefix: str) -> Cluster:
    return gateway_cluster(limits_config(fake.openai_base, redis_prefix=redis_prefix), processes=1)


@pytest.fixture
def client(limits_gateway: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limits_gateway.urls[0], timeout=30) as http:
        yield http


def _auth(key: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {key['key']}"}


def _assert_rate_headers(headers: httpx.Headers, rpm: int, tpm: int) -> None:
    for name in RATE_HEADERS:
        assert name in headers, (name, dict(headers))
    assert headers["x-ratelimit-limit-requests"] == str(rpm)
    assert headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < rpm
    assert 0 <= int(headers["x-ratelimit-remaining-tokens"]) < tpm
    assert headers["x-ratelimit-reset-requests"].endswith("s")


def test_every_kind_of_response_carries_the_rate_limit_headers(
    limits_gateway: Cluster, client: httpx.Client, fake: FakeUpstream
) -> None:
    key = limits_gateway.create_key("t1", rpm=50, tpm=100_000)
    auth = _auth(key)
    chat = client.post("/v1/chat/completions", json=FREE_BODY, headers=auth)
    assert chat.status_code == 200
    _assert_rate_headers(chat.headers, 50, 100_000)
    assert chat.headers["x-ratelimit-remaining-requests"] == "49"

    with client.stream("POST", "/v1/chat/completions", json={**FREE_BODY, "stream": True}, headers=auth) as stream:
        assert stream.status_code == 200
        _assert_rate_headers(stream.headers, 50, 100_000)
        assert "data: [DONE]" in stream.read().decode()

    anthropic_body = {"model": FREE_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    message = client.post("/v1/messages", json=anthropic_body, headers={"x-api-key": key["key"]})
    assert message.status_code == 200, message.text
    _assert_rate_headers(message.headers, 50, 100_000)

    embedding = client.post("/v1/embeddings", json={"model": EMBED_MODEL, "input": "hello"}, headers=auth)
    assert embedding.status_code == 200, embedding.text
    _assert_rate_headers(embedding.headers, 50, 100_000)

    fake.script(FREE_MODEL, ["500"])
    failed = client.post("/v1/chat/completions", json=FREE_BODY, headers=auth)
    assert failed.status_code >= 500 and "error" in failed.json()
    _assert_rate_headers(failed.headers, 50, 100_000)
    assert failed.headers["x-ratelimit-remaining-requests"] == "45"  # failures count as requests


def test_refusals_in_both_dialects(limits_gateway: Cluster, client: httpx.Client) -> None:
    key = limits_gateway.create_key("t1", rpm=3, daily_usd=0.05)
    auth = _auth(key)
    assert client.post("/v1/chat/completions", json=PRICED_BODY, headers=auth).status_code == 200
    # $0.03 spent: another $0.03 would pass $0.05.
    openai_refusal = client.post("/v1/chat/completions", json=PRICED_BODY, headers=auth)
    assert openai_refusal.status_code == 402
    error = openai_refusal.json()["error"]
    assert (error["type"], error["code"]) == ("budget_exceeded", "budget_exceeded")
    assert error["message"].startswith(f"Daily budget of key {key['prefix']}… ($0.05) would be exceeded")

    anthropic_body = {"model": PRICED_MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}
    anthropic_refusal = client.post("/v1/messages", json=anthropic_body, headers={"x-api-key": key["key"]})
    assert anthropic_refusal.status_code == 402
    assert anthropic_refusal.json() == {
        "type": "error",
        "error": {"type": "billing_error", "message": anthropic_refusal.json()["error"]["message"]},
    }
    assert "Daily budget" in anthropic_refusal.json()["error"]["message"]

    # Budget refusals recorded no request: 2 of the 3 per minute are still there.
    assert client.post("/v1/chat/completions", json=FREE_BODY, headers=auth).status_code == 200
    assert client.post("/v1/chat/completions", json=FREE_BODY, headers=auth).status_code == 200
    limited = client.post(
        "/v1/messages", json={**anthropic_body, "model": FREE_MODEL}, headers={"x-api-key": key["key"]}
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_the_per_request_cap_refuses_before_the_upstream(
    limits_gateway: Cluster, client: httpx.Client, fake: FakeUpstream
) -> None:
    key = limits_gateway.create_key("t1")
    before = fake.attempts(PRICED_MODEL)
    refused = client.post("/v1/chat/completions", json={**PRICED_BODY, "max_tokens": 100}, headers=_auth(key))
    assert refused.status_code == 402
    message = refused.json()["error"]["message"]
    assert "($1.0000" in message and "per-request cap of $0.50" in message
    assert fake.attempts(PRICED_MODEL) == before  # never sent upstream


def test_streams_are_priced_in_the_ledger(limits_gateway: Cluster, client: httpx.Client) -> None:
    import asyncio

    from tests.limits.gateway_load import ledger_spend

    key = limits_gateway.create_key("t1")
    body = {**PRICED_BODY, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=_auth(key)) as stream:
        assert stream.status_code == 200
        stream.read()
    deadline = time.monotonic() + 15
    recorded, spend = asyncio.run(ledger_spend(limits_gateway.env["BASTION_DATABASE_URL"], key["id"]))
    while recorded < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        recorded, spend = asyncio.run(ledger_spend(limits_gateway.env["BASTION_DATABASE_URL"], key["id"]))
    assert recorded == 1 and spend == pytest.approx(0.03)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_unreachable_redis_is_the_configured_choice_not_a_crash(
    gateway_cluster: ClusterFactory, fake: FakeUpstream, redis_prefix: str, mode: str
) -> None:
    config = limits_config(
        fake.openai_base, redis_prefix=redis_prefix, limits={"on_redis_failure": mode, "tenant": {"rpm": 1000}}
    )
    config["auth"] = {"enabled": False}
    # Nothing listens on the Redis port: identity's epoch and the limiter both see it down.
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    cluster = gateway_cluster(config, processes=1, redis_url=dead_redis)
    with httpx.Client(base_url=cluster.urls[0], timeout=30) as http:
        replies = [http.post("/v1/chat/completions", json=FREE_BODY) for _ in range(3)]
        metrics = http.get("/metrics").text
    if mode == "open":
        assert [r.status_code for r in replies] == [200, 200, 200], replies[0].text
        assert replies[0].headers["x-ratelimit-limit-requests"] == "1000"
    else:
        assert [r.status_code for r in replies] == [503, 503, 503]
        error = replies[0].json()["error"]
        assert error["code"] == "limiter_unavailable" and "unreachable" in error["message"]
        assert "retry-after" in replies[0].headers
    assert "bastion_limits_redis_failures_total" in metrics
    failures = [line for line in metrics.splitlines() if line.startswith("bastion_limits_redis_failures_total")]
    assert float(failures[0].split()[-1]) >= 1
    assert cluster.processes[0].process is not None and cluster.processes[0].process.poll() is None


def test_spend_survives_a_restart(limits_gateway: Cluster, client: httpx.Client) -> None:
    """The memory store starts empty after a restart; the budget window is seeded from the ledger."""
    key = limits_gateway.create_key("t1", daily_usd=0.05)
    assert client.post("/v1/chat/completions", json=PRICED_BODY, headers=_auth(key)).status_code == 200
    process = limits_gateway.processes[0]
    process.stop()
    process.start()
    refused = client.post("/v1/chat/completions", json=PRICED_BODY, headers=_auth(key))
    assert refused.status_code == 402, refused.text
    assert "$0.0300 spent" in refused.json()["error"]["message"]
