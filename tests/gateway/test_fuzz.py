"""Hostile input never breaks the gateway: property tests throw malformed bodies, wrong types,
huge numbers, deep nesting, invalid UTF-8, non-JSON and odd content types at every endpoint.

Whatever comes in, the answer is never a 500 (a 5xx only as a well-formed upstream error), always
the endpoint's own JSON error shape (or its normal success format), and never a traceback or
pydantic's internals. The app runs in-process (ASGI transport) for speed, in front of the same
fake upstream as the integration tests, so valid requests that slip through get real answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bastion.api.app import create_app
from bastion.config.loader import load_settings
from tests.gateway.helpers import LEAKS, assert_anthropic_error, assert_openai_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import write_config

MAX_BODY_BYTES = 16 * 1024
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


@dataclass
class InProcessGateway:
    runner: asyncio.Runner
    client: httpx.AsyncClient

    def request(
        self, method: str, path: str, content: bytes | None = None, content_type: str | None = None
    ) -> httpx.Response:
        headers = {"content-type": content_type} if content_type is not None else {}

        async def send() -> httpx.Response:
            return await self.client.request(method, path, content=content, headers=headers)

        return self.runner.run(send())


@pytest.fixture(scope="module")
def gateway_app(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    models: list[dict[str, Any]] = [
        {
            "name": "fz-ok",
            "deployments": [{"provider": "openai", "model": "fz-ok", "api_base": fake_upstream.openai_base}],
        },
        {
            "name": "fz-embed",
            "kind": "embedding",
            "deployments": [{"provider": "openai", "model": "fz-embed", "api_base": fake_upstream.openai_base}],
        },
    ]
    models.append(
        {
            "name": "fz-claude",
            "deployments": [{"provider": "anthropic", "model": "fz-claude", "api_base": fake_upstream.base_url}],
        }
    )
    config = {
        "server": {"max_body_bytes": MAX_BODY_BYTES},
        "models": models,
        "router": {"retries": 1, "backoff_base_s": 0.001, "backoff_max_s": 0.002},
        "local": {"enabled": False},
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "logging": {"level": "error"},
        "data_dir": str(workdir / "data"),
    }
    app = create_app(load_settings(write_config(workdir / "bastion.yaml", config), environ={}))
    runner = asyncio.Runner()
    lifespan = app.router.lifespan_context(app)
    runner.run(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bastion.test", timeout=30)
    try:
        yield InProcessGateway(runner, client)
    finally:
        runner.run(client.aclose())
        runner.run(lifespan.__aexit__(None, None, None))
        runner.close()


# -- strategies ------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities serialise to tokens that are not JSON
    | st.text(max_size=20)
    | st.sampled_from(["", "fz-ok", "fz-embed", "fz-claude", "user", "assistant", "system", "tool", "text", "auto"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
content_blocks = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["text", "image", "tool_use", "tool_result", "document", "thinking", "image_url", "x"]
            )
        },
        optional={
            "text": json_values,
            "source": json_values,
            "id": json_values,
            "name": json_values,
            "input": json_values,
            "tool_use_id": json_values,
            "content": json_values,
            "cache_control": json_values,
            "image_url": json_values,
        },
    ),
    max_size=3,
)

CHAT_BASE: dict[str, Any] = {"model": "fz-ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
CHAT_PATHS: list[tuple[Any, ...]] = [
    ("model",), ("messages",), ("messages", 0), ("messages", 0, "role"), ("messages", 0, "content"),
    ("messages", 0, "tool_calls"), ("messages", 0, "tool_call_id"), ("messages", 0, "name"), ("stream",),
    ("stream_options",), ("temperature",), ("top_p",), ("n",), ("max_tokens",), ("max_completion_tokens",),
    ("stop",), ("seed",), ("tools",), ("tool_choice",), ("response_format",), ("logit_bias",), ("logprobs",),
    ("top_logprobs",), ("presence_penalty",), ("frequency_penalty",), ("user",), ("metadata",), ("bastion",),
    ("parallel_tool_calls",),
]  # fmt: skip
MESSAGES_BASE: dict[str, Any] = {"model": "fz-ok", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES_PATHS: list[tuple[Any, ...]] = [
    ("model",), ("max_tokens",), ("messages",), ("messages", 0), ("messages", 0, "role"),
    ("messages", 0, "content"), ("system",), ("stop_sequences",), ("stream",), ("temperature",), ("top_p",),
    ("top_k",), ("tools",), ("tool_choice",), ("metadata",), ("thinking",), ("cache_control",), ("output_config",),
]  # fmt: skip
EMBEDDINGS_BASE: dict[str, Any] = {"model": "fz-embed", "input": "hi"}
EMBEDDINGS_PATHS: list[tuple[Any, ...]] = [("model",), ("input",), ("encoding_format",), ("dimensions",), ("user",)]


def _mutate(base: dict[str, Any], changes: list[tuple[tuple[Any, ...], Any, bool]]) -> Any:
    """Apply (path, value, delete) changes to a deep copy of ``base``; stale paths are skipped."""
    body = json.loads(json.dumps(base))
    for path, value, delete in changes:
        node = body
        for key in path[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            try:
                if delete:
                    del node[path[-1]]
                else:
                    node[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                pass
    return body


def mutated(
    base: dict[str, Any], paths: list[tuple[Any, ...]], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    # (path, new value, delete instead of set)
    change = st.tuples(st.sampled_from(paths), values, st.booleans())
    return st.lists(change, min_size=1, max_size=4).map(lambda changes: _mutate(base, changes))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


hostile_bytes = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=60).map(lambda b: b'{"model": "fz-ok", "messages": "' + b"\xff\xfe" + b + b'"}'),
    st.tuples(st.integers(50, 3000), st.sampled_from(["list", "dict"])).map(lambda t: _nested(*t)),
    st.integers(20, 400).map(lambda n: b'{"model": "fz-ok", "max_tokens": ' + b"9" * n + b', "messages": []}'),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(lambda t: t.encode("utf-8")),
    st.text(max_size=50).map(lambda t: json.dumps({"model": t, "messages": t}).encode()),
    json_values.map(_dumps),
    st.sampled_from([b"null", b"true", b"[]", b"{}", b"0", b'""', b"NaN", b'{"model":', b"\x00" * 10]),
    st.integers(MAX_BODY_BYTES, MAX_BODY_BYTES * 2).map(lambda n: b'{"model": "' + b"x" * n + b'"}'),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "",
        None,
    ]
)


def endpoint_bodies(
    base: dict[str, Any], paths: list[tuple[Any, ...]], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(base, paths, values).map(_dumps), hostile_bytes)


chat_bodies = endpoint_bodies(CHAT_BASE, CHAT_PATHS, json_values)
messages_bodies = endpoint_bodies(MESSAGES_BASE, MESSAGES_PATHS, json_values | content_blocks)
embedding_bodies = endpoint_bodies(EMBEDDINGS_BASE, EMBEDDINGS_PATHS, json_values)


# -- the property ------------------------------------------------------------------------------------------


def check_response(method: str, path: str, response: httpx.Response) -> None:
    text = response.content.decode("utf-8", "replace")
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {method} {path} -> {response.status_code}: {text[:300]}"
    assert response.headers.get("x-request-id") and response.headers.get("x-bastion-overhead-ms") is not None
    status = response.status_code
    event(f"status {status}")  # shown by --hypothesis-show-statistics: the fuzz must reach successes too
    assert status != 500, f"{method} {path} -> 500: {text[:300]}"
    anthropic = path.startswith("/v1/messages")
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        assert status == 200
        for line in text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                orjson.loads(line[6:])
        return
    if path == "/metrics" and status == 200:
        assert text.startswith("# HELP")
        return
    assert content_type.startswith("application/json"), (status, content_type)
    body = response.json()
    if status >= 400:
        if anthropic:
            assert_anthropic_error(body)
        else:
            assert_openai_error(body)
    if status >= 500:
        # Only a well-formed upstream failure may be a 5xx (the fake upstream answers everything).
        assert status in (502, 503, 504), (status, body)


@pytest.mark.parametrize(
    ("path", "bodies"),
    [
        ("/v1/chat/completions", chat_bodies),
        ("/chat/completions", chat_bodies),
        ("/v1/messages", messages_bodies),
        ("/v1/embeddings", embedding_bodies),
    ],
    ids=["chat", "chat-unversioned", "messages", "embeddings"],
)
@FUZZ
@given(data=st.data())
def test_hostile_bodies_on_model_endpoints(
    gateway_app: InProcessGateway, path: str, bodies: st.SearchStrategy[bytes], data: st.DataObject
) -> None:
    body = data.draw(bodies, label="body")
    content_type = data.draw(content_types, label="content_type")
    check_response("POST", path, gateway_app.request("POST", path, body, content_type))


METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
ODD_PATHS = [
    "/",
    "/v1",
    "/v1/nope",
    "/v1/models/fz-ok",
    "/v1/models/nope/../../etc",
    "/v1/messages/count_tokens",
    "/v1/chat/completions/extra",
    "/%ff%fe",
]
random_paths = st.text(alphabet=st.characters(codec="ascii", exclude_characters="?#"), max_size=30).map(
    lambda p: "/" + p
)


@pytest.mark.parametrize(
    ("paths", "name"),
    [
        (st.just("/v1/models"), "models"),
        (st.just("/healthz"), "healthz"),
        (st.just("/readyz"), "readyz"),
        (st.just("/metrics"), "metrics"),
        (st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/embeddings"]), "model-endpoints"),
        (st.sampled_from(ODD_PATHS) | random_paths, "unknown-paths"),
    ],
    ids=["models", "healthz", "readyz", "metrics", "model-endpoints", "unknown-paths"],
)
@FUZZ
@given(data=st.data())
def test_every_path_and_method(
    gateway_app: InProcessGateway, paths: st.SearchStrategy[str], name: str, data: st.DataObject
) -> None:
    method = data.draw(METHODS, label="method")
    path = data.draw(paths, label="path")
    body = data.draw(st.none() | hostile_bytes, label="body")
    content_type = data.draw(content_types, label="content_type")
    try:
        response = gateway_app.request(method, path, body, content_type)
    except httpx.InvalidURL:
        return  # not a request a client can send
    check_response(method, path, response)


def test_the_fuzzed_gateway_still_answers(gateway_app: InProcessGateway) -> None:
    # A sanity check on the fixture itself: valid requests get real answers from the fake.
    response = gateway_app.request("POST", "/v1/chat/completions", _dumps(CHAT_BASE), "application/json")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    response = gateway_app.request("POST", "/v1/messages", _dumps(MESSAGES_BASE), "application/json")
    assert response.status_code == 200 and response.json()["type"] == "message"
    response = gateway_app.request("POST", "/v1/embeddings", _dumps(EMBEDDINGS_BASE), "application/json")
    assert response.status_code == 200 and len(response.json()["data"]) == 1
