"""Request ids and overhead headers on every response, the operational endpoints, /v1/models."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.helpers import USER_MESSAGES, anthropic_body, assert_stamped, chat_body
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import (
    ANTHROPIC_FAKE_MODELS,
    FAKE_EMBEDDING_MODEL,
    OPENAI_FAKE_MODELS,
)
from tests.support.polling import wait_until

# -- x-request-id and x-bastion-overhead-ms ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", chat_body("fake-ok")),
        ("POST", "/v1/chat/completions", chat_body("fake-ok", stream=True)),
        ("POST", "/v1/messages", anthropic_body("fake-ok")),
        ("POST", "/v1/messages", anthropic_body("fake-ok", stream=True)),
        ("POST", "/v1/embeddings", {"model": FAKE_EMBEDDING_MODEL, "input": "hello"}),
        ("POST", "/v1/chat/completions", chat_body("no-such-model")),
        ("POST", "/v1/chat/completions", {"model": "fake-ok"}),
        ("POST", "/v1/messages", {"model": "fake-ok"}),
        ("GET", "/v1/nowhere", None),
        ("DELETE", "/v1/models", None),
        ("GET", "/v1/models", None),
        ("GET", "/healthz", None),
        ("GET", "/metrics", None),
    ],
)
def test_every_response_is_stamped(
    fake: FakeUpstream, http: httpx.Client, method: str, path: str, body: dict[str, object] | None
) -> None:
    with http.stream(method, path, json=body) as response:
        response.read()
    assert_stamped(response.headers)


def test_request_ids_are_unique(http: httpx.Client) -> None:
    ids = {http.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_overhead_excludes_a_slow_upstream(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("m-slow", ["ok:1"])
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=chat_body("m-slow"))
    assert response.status_code == 200
    assert time.monotonic() - started >= 1.0
    assert_stamped(response.headers)


def test_overhead_excludes_a_slow_first_chunk(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("m-slow", ["ok:1"])
    started = time.monotonic()
    with http.stream("POST", "/v1/chat/completions", json=chat_body("m-slow", stream=True)) as response:
        # Headers go out once the first chunk has arrived: a second after the request.
        assert time.monotonic() - started >= 1.0
        assert_stamped(response.headers)
        body = response.read()
    assert body.endswith(b"data: [DONE]\n\n")


# -- /healthz, /readyz, /metrics ---------------------------------------------------------------------


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_lists_deployments(http: httpx.Client) -> None:
    # Other tests open breakers on purpose; with a 1 s cool-down they let a trial through again
    # shortly, which makes the gateway ready again.
    def readyz_200() -> httpx.Response | None:
        answer = http.get("/readyz")
        return answer if answer.status_code == 200 else None

    response = wait_until(readyz_200, timeout_s=5, what="ready")
    ready = response.json()
    assert ready["status"] == "ready" and ready["unavailable_models"] == []
    deployments = ready["deployments"]
    expected = {*OPENAI_FAKE_MODELS, FAKE_EMBEDDING_MODEL}
    expected |= set(ANTHROPIC_FAKE_MODELS)
    assert expected <= set(deployments)
    assert {d["model"] for d in deployments.values()} >= {"local/smollm2", "local/minilm"}
    for deployment in deployments.values():
        assert deployment["circuit"] in ("closed", "half_open")
        assert isinstance(deployment["ready"], bool) and isinstance(deployment["in_flight"], int)
    assert deployments["fake-ok"] == {
        "model": "fake-ok",
        "provider": "openai",
        "ready": True,
        "circuit": "closed",
        "in_flight": 0,
    }


def _samples(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_in_prometheus_format(fake: FakeUpstream, http: httpx.Client, openai_client: openai.OpenAI) -> None:
    before = _samples(http)
    fake.script("m-metrics", ["ok", "ok", "500", "ok"])
    openai_client.chat.completions.create(model="m-metrics", messages=USER_MESSAGES)
    stream = openai_client.chat.completions.create(model="m-metrics", messages=USER_MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    openai_client.chat.completions.create(model="m-metrics", messages=USER_MESSAGES)  # 500, then retried
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="no-such-model", messages=USER_MESSAGES)
    after = _samples(http)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"endpoint": "chat", "model": "m-metrics", "deployment": "m-metrics", "status": "200"}
    assert delta("bastion_requests_total", **ok) == 3
    unrouted = {"endpoint": "chat", "model": "unrouted", "deployment": "-", "status": "404"}
    assert delta("bastion_requests_total", **unrouted) == 1
    assert delta("bastion_request_latency_seconds_count", endpoint="chat", model="m-metrics") == 3
    assert delta("bastion_time_to_first_token_seconds_count", model="m-metrics") == 1
    assert delta("bastion_overhead_seconds_count", endpoint="v1") >= 4
    assert _value(after, "bastion_overhead_seconds_bucket", endpoint="v1", le="+Inf") > 0
    assert delta("bastion_tokens_total", model="m-metrics", direction="input") > 0
    assert delta("bastion_tokens_total", model="m-metrics", direction="output") > 0
    assert delta("bastion_upstream_retries_total", deployment="m-metrics", reason="500") == 1
    assert _value(after, "bastion_circuit_state", deployment="m-metrics") == 0
    assert ("bastion_circuit_state", frozenset({("deployment", "fake-ok")})) in after


def test_metrics_show_an_open_circuit(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.default("m-breaker-metrics", "500")
    assert _value(_samples(http), "bastion_circuit_state", deployment="m-breaker-metrics") == 0
    http.post("/v1/chat/completions", json=chat_body("m-breaker-metrics"))
    assert http.get("/readyz").json()["deployments"]["m-breaker-metrics"]["circuit"] == "open"
    assert _value(_samples(http), "bastion_circuit_state", deployment="m-breaker-metrics") == 2


# -- /v1/models ----------------------------------------------------------------------------------------


def test_models_endpoint_lists_aliases(http: httpx.Client) -> None:
    response = http.get("/v1/models")
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    ids = {card["id"] for card in listing["data"]}
    assert {*OPENAI_FAKE_MODELS, FAKE_EMBEDDING_MODEL} <= ids
    assert {"local/smollm2", "local/minilm"} <= ids
    for card in listing["data"]:
        assert card["object"] == "model" and isinstance(card["created"], int) and card["owned_by"]


def test_models_through_the_sdk(openai_client: openai.OpenAI) -> None:
    ids = {model.id for model in openai_client.models.list()}
    assert {"fake-ok", "m-retry", FAKE_EMBEDDING_MODEL} <= ids
    assert openai_client.models.retrieve("fake-ok").id == "fake-ok"
    # A model id with a slash is still one path parameter.
    assert openai_client.models.retrieve("local/smollm2").id == "local/smollm2"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model")
