"""Client errors, end to end: unknown models and routes, oversized and invalid bodies. Each comes
back with the right status, in the calling dialect's error shape, as the SDKs' own exceptions."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.gateway.helpers import (
    ANTHROPIC_MESSAGES,
    USER_MESSAGES,
    anthropic_body,
    assert_anthropic_error,
    assert_openai_error,
    assert_stamped,
    chat_body,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import MAX_BODY_BYTES

# -- unknown model and route -------------------------------------------------------------------------


def test_unknown_model_is_404_in_the_openai_dialect(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="no-such-model", messages=USER_MESSAGES)
    assert caught.value.status_code == 404
    response = http.post("/v1/chat/completions", json=chat_body("no-such-model"))
    assert response.status_code == 404
    error = assert_openai_error(response.json(), param="model")
    assert error["code"] == "model_not_found" and "no-such-model" in error["message"]
    assert_stamped(response.headers)


def test_unknown_model_is_404_in_the_anthropic_dialect(
    anthropic_client: anthropic.Anthropic, http: httpx.Client
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client.messages.create(model="no-such-model", max_tokens=8, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 404
    response = http.post("/v1/messages", json=anthropic_body("no-such-model"))
    assert response.status_code == 404
    error = assert_anthropic_error(response.json(), "not_found_error")
    assert "no-such-model" in error["message"]
    assert_stamped(response.headers)


def test_unknown_model_on_a_stream_is_a_plain_404(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="no-such-model", messages=USER_MESSAGES, stream=True)


def test_unknown_model_for_embeddings_and_wrong_kind(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.embeddings.create(model="no-such-model", input="hello")
    # A chat model is not an embedding model (and the other way round): 404, not a 5xx.
    with pytest.raises(openai.NotFoundError):
        openai_client.embeddings.create(model="fake-ok", input="hello")
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="fake-embed", messages=USER_MESSAGES)


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/nothing-here", "/v1/messages/batches/x"])
def test_unknown_route_is_404_json(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    if path.startswith("/v1/messages"):
        assert_anthropic_error(response.json(), "not_found_error")
    else:
        assert_openai_error(response.json())
    assert_stamped(response.headers)


def test_wrong_method_is_405_json(http: httpx.Client) -> None:
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert_openai_error(response.json())
    assert response.headers["allow"] == "POST"  # RFC 9110: a 405 names the methods that would work
    response = http.get("/v1/messages")
    assert response.status_code == 405
    assert_anthropic_error(response.json())
    assert_stamped(response.headers)
    assert set(http.request("TRACE", "/v1/models").headers["allow"].split(", ")) == {"GET", "HEAD"}


# -- body too large ------------------------------------------------------------------------------------


def _oversized(body: dict[str, object]) -> dict[str, object]:
    return {**body, "messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 1024)}]}


def test_body_too_large_is_413_in_both_dialects(fake: FakeUpstream, http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json=_oversized(chat_body("fake-ok")))
    assert response.status_code == 413
    assert_openai_error(response.json())
    assert_stamped(response.headers)
    response = http.post("/v1/messages", json=_oversized(anthropic_body("fake-ok")))
    assert response.status_code == 413
    assert_anthropic_error(response.json(), "request_too_large")
    response = http.post("/v1/embeddings", json={"model": "fake-embed", "input": "x" * (MAX_BODY_BYTES + 1)})
    assert response.status_code == 413
    assert fake.attempts("fake-ok") == 0 and fake.attempts("fake-embed") == 0


def test_body_too_large_without_content_length_is_413(http: httpx.Client) -> None:
    # A chunked upload declares no size: the limit must hold while reading, not just on the header.
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fake-ok", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 8):
            yield b"x" * 1024
        yield b'"}]}'

    response = http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert_openai_error(response.json())


def test_sdk_raises_for_413(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        openai_client.chat.completions.create(
            model="fake-ok", messages=[{"role": "user", "content": "x" * (MAX_BODY_BYTES + 1)}]
        )
    assert caught.value.status_code == 413


# -- invalid requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-ok"}, "messages"),
        ({"messages": USER_MESSAGES}, "model"),
        (chat_body("fake-ok", temperature=5), "temperature"),
        (chat_body("fake-ok", temperature="hot"), "temperature"),
        (chat_body("fake-ok", max_tokens=0), "max_tokens"),
        (chat_body("fake-ok", stream="yes"), "stream"),
        ({"model": "fake-ok", "messages": []}, "messages"),
        ({"model": "fake-ok", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"model": "fake-ok", "messages": "hello"}, "messages"),
        ({"model": 42, "messages": USER_MESSAGES}, "model"),
        # Union-typed fields: the param is the field, not pydantic's branch name ("content.str").
        ({"model": "fake-ok", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        (chat_body("fake-ok", stop=5), "stop"),
    ],
)
def test_invalid_chat_request_is_400_naming_the_field(
    fake: FakeUpstream, http: httpx.Client, body: dict[str, object], param: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = assert_openai_error(response.json(), param=param)
    assert error["type"] == "invalid_request_error"
    assert param.split(".")[0] in error["message"]
    assert_stamped(response.headers)
    assert fake.attempts("fake-ok") == 0, "an invalid request must never reach the upstream"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "fake-ok", "max_tokens": 16}, "messages"),
        ({"model": "fake-ok", "messages": USER_MESSAGES}, "max_tokens"),
        (anthropic_body("fake-ok", temperature=5), "temperature"),
        (anthropic_body("fake-ok", max_tokens="many"), "max_tokens"),
        (anthropic_body("fake-ok", system=42), "system"),
        ({"model": "fake-ok", "max_tokens": 16, "messages": [{"role": "system", "content": "x"}]}, "role"),
    ],
)
def test_invalid_anthropic_request_is_400_naming_the_field(
    fake: FakeUpstream, http: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400
    error = assert_anthropic_error(response.json(), "invalid_request_error")
    assert field in error["message"]
    assert_stamped(response.headers)
    assert fake.attempts("fake-ok") == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"text"', b"null"])
def test_non_object_bodies_are_400(http: httpx.Client, path: str, content: bytes) -> None:
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    if path == "/v1/messages":
        assert_anthropic_error(response.json(), "invalid_request_error")
    else:
        assert_openai_error(response.json())


def test_sdks_raise_bad_request_errors(openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError) as caught_openai:
        openai_client.chat.completions.create(model="fake-ok", messages=USER_MESSAGES, temperature=5)
    assert caught_openai.value.status_code == 400
    assert "temperature" in str(caught_openai.value.body)
    with pytest.raises(anthropic.BadRequestError) as caught_anthropic:
        anthropic_client.messages.create(
            model="fake-ok", max_tokens=8, messages=ANTHROPIC_MESSAGES, extra_body={"temperature": 5}
        )
    assert caught_anthropic.value.status_code == 400
    assert "temperature" in str(caught_anthropic.value.body)


def test_invalid_embedding_request_is_400(http: httpx.Client) -> None:
    for body, param in [
        ({"model": "fake-embed"}, "input"),
        ({"model": "fake-embed", "input": ""}, "input"),
        ({"model": "fake-embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "fake-embed", "input": []}, "input"),
        ({"model": "fake-embed", "input": 5}, "input"),
    ]:
        response = http.post("/v1/embeddings", json=body)
        assert response.status_code == 400, body
        assert_openai_error(response.json(), param=param)
