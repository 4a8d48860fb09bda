"""The happy path through the gateway to the fake upstream: what reaches the upstream, what comes
back, streaming formats and usage accounting in both dialects and with both provider kinds."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.gateway.helpers import ANTHROPIC_MESSAGES, USER_MESSAGES, assert_stamped
from tests.support.fake_upstream import FakeUpstream, answer_text, fake_vector
from tests.support.gateway import FAKE_EMBEDDING_MODEL, GatewayProcess


def test_openai_chat_reaches_the_upstream_with_its_own_key(fake: FakeUpstream, gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-secret", max_retries=0)
    completion = client.chat.completions.create(
        model="fake-ok", messages=USER_MESSAGES, temperature=0.2, max_tokens=20, stop=["\n\n"]
    )
    assert completion.choices[0].message.content == answer_text("fake-ok")
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    (request,) = fake.requests("fake-ok")
    # The upstream sees the deployment's key, never the client's credentials.
    assert request.headers.get("Authorization") == "Bearer test-key"
    assert "client-secret" not in str(request.headers)
    assert request.body["model"] == "fake-ok" and request.body["messages"] == USER_MESSAGES
    assert (request.body["temperature"], request.body["max_tokens"], request.body["stop"]) == (0.2, 20, ["\n\n"])
    assert "bastion" not in request.body


def test_openai_stream_usage_only_when_asked(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="fake-ok", messages=USER_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer_text("fake-ok")
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens + usage.completion_tokens == usage.total_tokens

    chunks = list(openai_client.chat.completions.create(model="fake-ok", messages=USER_MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer_text("fake-ok")
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    # The gateway asks the upstream for usage either way (for its own accounting).
    assert all(r.body["stream_options"]["include_usage"] is True for r in fake.requests("fake-ok"))


def test_raw_sse_format(http: httpx.Client) -> None:
    body = {"model": "fake-ok", "messages": USER_MESSAGES, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert_stamped(response.headers)
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in events)


def test_usage_is_estimated_when_the_upstream_reports_none(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    fake.script("m-no-usage", ["no_usage", "no_usage"])
    completion = openai_client.chat.completions.create(model="m-no-usage", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == answer_text("m-no-usage")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens

    chunks = list(
        openai_client.chat.completions.create(
            model="m-no-usage", messages=USER_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_client_to_openai_upstream(fake: FakeUpstream, anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="fake-ok", max_tokens=32, system="Be brief.", messages=ANTHROPIC_MESSAGES
    )
    assert message.content[0].type == "text" and message.content[0].text == answer_text("fake-ok")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (request,) = fake.requests("fake-ok")
    # Translated to the OpenAI shape on the way out: the system prompt is the first message.
    assert request.dialect == "openai"
    assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request.body["max_tokens"] == 32

    with anthropic_client.messages.stream(model="fake-ok", max_tokens=32, messages=ANTHROPIC_MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == answer_text("fake-ok")
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


def test_openai_client_to_anthropic_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model="a-ok", messages=USER_MESSAGES, max_tokens=50)
    assert completion.choices[0].message.content == answer_text("a-ok")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    (request,) = fake.requests("a-ok")
    assert request.dialect == "anthropic" and request.body["max_tokens"] == 50
    assert request.headers.get("x-api-key") == "test-key"

    chunks = list(
        openai_client.chat.completions.create(
            model="a-ok", messages=USER_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer_text("a-ok")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_client_to_anthropic_upstream(fake: FakeUpstream, anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model="a-ok", max_tokens=32, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == answer_text("a-ok")
    with anthropic_client.messages.stream(model="a-ok", max_tokens=32, messages=ANTHROPIC_MESSAGES) as stream:
        assert "".join(stream.text_stream) == answer_text("a-ok")
    assert fake.attempts("a-ok") == 2


def test_embeddings_through_an_openai_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    result = openai_client.embeddings.create(model=FAKE_EMBEDDING_MODEL, input=["a b", "c"], encoding_format="float")
    assert [d.embedding for d in result.data] == [pytest.approx(fake_vector("a b")), pytest.approx(fake_vector("c"))]
    assert result.usage.prompt_tokens == 3
    # The SDK's default (base64, decoded by the SDK) gives the same vectors, to float32 precision.
    decoded = openai_client.embeddings.create(model=FAKE_EMBEDDING_MODEL, input="a b")
    assert decoded.data[0].embedding == pytest.approx(fake_vector("a b"), abs=1e-6)


def test_embedding_dimensions_reach_the_upstream(fake: FakeUpstream, openai_client: openai.OpenAI) -> None:
    openai_client.embeddings.create(model=FAKE_EMBEDDING_MODEL, input="a b", dimensions=64, encoding_format="float")
    assert fake.requests(FAKE_EMBEDDING_MODEL)[-1].body["dimensions"] == 64


def test_local_embeddings_refuse_other_dimensions(openai_client: openai.OpenAI) -> None:
    # MiniLM has no shortened (Matryoshka) vectors: a silent 384-dimension answer would be a lie.
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.embeddings.create(model="local/minilm", input="hello", dimensions=256)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "dimensions", body
