"""The embedded models through the running gateway, with the real SDKs: SmolLM2 for chat (both
dialects, streaming and not) and MiniLM for embeddings (float and base64)."""

from __future__ import annotations

import base64
import math

import anthropic
import httpx
import numpy as np
import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.helpers import assert_stamped

CHAT = "local/smollm2"
EMBED = "local/minilm"
MAX_TOKENS = 12
QUESTION = "What is the capital of France? Answer in one word."
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]
ANTHROPIC_MESSAGES: list[MessageParam] = [{"role": "user", "content": QUESTION}]


def test_openai_chat(openai_client: openai.OpenAI) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model=CHAT, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0
    )
    assert_stamped(raw.headers)
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    assert usage.completion_tokens <= MAX_TOKENS
    if choice.finish_reason == "length":
        assert usage.completion_tokens == MAX_TOKENS


def test_openai_stream_with_usage(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=CHAT,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    with_usage = [c for c in chunks if c.usage is not None]
    # Exactly one usage chunk, last, with no choices (OpenAI's shape for include_usage).
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    usage = with_usage[0].usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= MAX_TOKENS
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])


def test_openai_stream_without_usage(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=CHAT, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert all(c.usage is None for c in chunks), "usage was sent although the client did not ask for it"
    assert all(c.choices for c in chunks)


def test_anthropic_messages(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model=CHAT, max_tokens=MAX_TOKENS, messages=ANTHROPIC_MESSAGES, system="You are terse."
    )
    assert message.type == "message" and message.role == "assistant"
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= MAX_TOKENS


def test_anthropic_stream(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(model=CHAT, max_tokens=MAX_TOKENS, messages=ANTHROPIC_MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip()
    assert "".join(block.text for block in final.content if block.type == "text") == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0
    assert 0 < final.usage.output_tokens <= MAX_TOKENS


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_embeddings_float(openai_client: openai.OpenAI) -> None:
    inputs = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock markets fell sharply today."]
    result = openai_client.embeddings.create(model=EMBED, input=inputs, encoding_format="float")
    assert [item.index for item in result.data] == [0, 1, 2]
    vectors = [item.embedding for item in result.data]
    assert {len(v) for v in vectors} == {384}
    assert all(math.isfinite(x) for v in vectors for x in v)
    # A real sentence model: paraphrases are closer than unrelated sentences.
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.2
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens


def test_embeddings_base64_matches_float(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    inputs = ["hello world", "bonjour le monde"]
    floats = [
        d.embedding for d in openai_client.embeddings.create(model=EMBED, input=inputs, encoding_format="float").data
    ]

    # Asked for explicitly, the SDK hands the base64 strings over untouched.
    explicit = openai_client.embeddings.create(model=EMBED, input=inputs, encoding_format="base64")
    for item, expected in zip(explicit.data, floats, strict=True):
        assert isinstance(item.embedding, str)
        decoded = np.frombuffer(base64.b64decode(item.embedding), dtype="<f4")
        np.testing.assert_allclose(decoded, expected, rtol=0, atol=1e-6)

    # By default the SDK asks for base64 itself and decodes it to floats.
    implicit = openai_client.embeddings.create(model=EMBED, input=inputs)
    for item, expected in zip(implicit.data, floats, strict=True):
        np.testing.assert_allclose(item.embedding, expected, rtol=0, atol=1e-6)

    # The raw wire format: little-endian float32, 4 bytes per dimension.
    response = http.post("/v1/embeddings", json={"model": EMBED, "input": "hello world", "encoding_format": "base64"})
    assert response.status_code == 200
    assert_stamped(response.headers)
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(raw) == 4 * len(floats[0])
