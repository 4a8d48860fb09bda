"""LocalProvider: OpenAI-shaped answers from the embedded models, and request translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.config.settings import DeploymentSettings, LocalModelSettings, TimeoutSettings
from bastion.errors import InvalidRequest, UpstreamUnavailable
from bastion.providers.anthropic_common import STOP_SEQUENCE
from bastion.providers.base import ChatRequest, Deployment
from bastion.providers.local import LocalProvider, to_generation_request, to_local_messages
from tests.local.conftest import LONG_PROMPT, SHORT_PROMPT, needs_embedder, needs_llama
from tests.support.openai_spec import validate

LOCAL = LocalModelSettings(n_ctx=1024, max_queue=8, default_max_tokens=32)


def provider(model: str) -> LocalProvider:
    alias = f"local/{model}"
    settings = DeploymentSettings(provider="local", model=model, id=f"local-{model}")
    deployment = Deployment(id=f"local-{model}", alias=alias, settings=settings, timeouts=TimeoutSettings())
    deployment.extra["local"] = LOCAL
    return LocalProvider(deployment)


@needs_llama
async def test_chat_is_an_openai_chat_completion() -> None:
    chat = provider("smollm2")
    await chat.warm()
    assert await chat.check_ready()
    body = {"model": "local/smollm2", "messages": SHORT_PROMPT, "max_tokens": 12, "seed": 3}
    response = await chat.chat(ChatRequest(body=body, request_id="r1"))
    data = response.body
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion" and data["model"] == "local/smollm2"
    assert isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert response.usage is not None and not response.usage.estimated
    assert 0 < response.usage.completion_tokens <= 12 and response.usage.prompt_tokens > 0
    assert data["usage"] == response.usage.to_openai()


@needs_llama
async def test_stream_is_openai_chunks_with_usage_last() -> None:
    chat = provider("smollm2")
    body = {"model": "local/smollm2", "messages": LONG_PROMPT, "max_completion_tokens": 20, "temperature": 0}
    chunks = [chunk async for chunk in chat.stream_chat(ChatRequest(body=body, request_id="r2", stream=True))]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["model"] for c in chunks} == {"local/smollm2"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(content) >= 3 and "".join(content).strip()
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 20 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 20


@needs_llama
async def test_abandoned_stream_frees_the_engine() -> None:
    chat = provider("smollm2")
    assert chat.engine is not None
    body = {"model": "local/smollm2", "messages": LONG_PROMPT, "max_tokens": 400}
    stream = chat.stream_chat(ChatRequest(body=body, request_id="r3", stream=True))
    await stream.__anext__()
    await stream.__anext__()
    await stream.aclose()
    assert await chat.engine.wait_idle(timeout=10.0)


@needs_llama
async def test_errors_surface_before_the_first_chunk() -> None:
    chat = provider("smollm2")
    huge = " ".join(f"word{i}" for i in range(1500))
    stream = chat.stream_chat(ChatRequest(body={"messages": [{"role": "user", "content": huge}]}, request_id="r4"))
    with pytest.raises(InvalidRequest):
        await stream.__anext__()


@needs_llama
async def test_each_model_refuses_the_other_kind_of_call() -> None:
    with pytest.raises(InvalidRequest) as refused:
        await provider("smollm2").embed(["hello"], "r5")
    assert refused.value.param == "model" and "embeddings" in refused.value.message
    with pytest.raises(InvalidRequest) as refused:
        await provider("minilm").chat(ChatRequest(body={"messages": SHORT_PROMPT}, request_id="r6"))
    assert refused.value.param == "model"


@needs_embedder
async def test_embed_returns_vectors_and_usage() -> None:
    embed = provider("minilm")
    response = await embed.embed(["first text", "second text"], "r7")
    assert len(response.vectors) == 2 and len(response.vectors[0]) == 384
    assert response.usage is not None and response.usage.prompt_tokens == 4


def test_unknown_local_model_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="serves"):
        provider("llama-70b")


def test_messages_are_flattened_for_the_chat_template() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this picture?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ]
    assert to_local_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is in\nthis picture?"},
        {"role": "assistant", "content": 'Tool call: look({"x": 1})'},
        {"role": "user", "content": "Tool result (look): a cat"},
    ]


def test_request_parameters_are_translated_and_checked() -> None:
    body = {
        "messages": SHORT_PROMPT,
        "max_tokens": 50,
        "max_completion_tokens": 20,
        "temperature": 0,
        "stop": "\n\n",
        "seed": 2**40 + 5,
        "response_format": {"type": "json_object"},
    }
    request = to_generation_request(body)
    assert request.max_tokens == 20  # max_completion_tokens wins, as at OpenAI
    assert request.temperature == 0.0 and request.top_p == 0.9
    assert request.stop == ["\n\n"] and request.seed is not None and request.seed < 2**31
    assert request.response_format == {"type": "json_object"}
    for bad, param in (
        ({"n": 2}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"messages": []}, "messages"),
    ):
        with pytest.raises(InvalidRequest) as rejected:
            to_generation_request({"messages": SHORT_PROMPT, **bad})
        assert rejected.value.param == param


async def test_missing_model_is_a_503_naming_the_extra(tmp_path: Path) -> None:
    from bastion.local.chat_engine import ChatEngine, GenerationRequest
    from bastion.local.embedder import Embedder

    engine = ChatEngine(tmp_path / "absent.gguf")
    assert not engine.loadable()
    with pytest.raises(UpstreamUnavailable) as missing:
        await engine.complete(GenerationRequest(SHORT_PROMPT))
    assert missing.value.status == 503 and "pip install 'bastion[local]'" in missing.value.message
    assert not missing.value.retryable

    embedder = Embedder(None)
    assert not embedder.loadable()
    with pytest.raises(UpstreamUnavailable, match=r"bastion\[local\]"):
        await embedder.embed(["hello"])


@needs_llama
async def test_the_stop_sequence_that_ended_an_answer_is_named() -> None:
    chat = provider("smollm2")
    body: dict[str, Any] = {"model": "local/smollm2", "messages": LONG_PROMPT, "max_tokens": 24, "temperature": 0}
    free = await chat.chat(ChatRequest(body=body, request_id="r-free"))
    text = free.body["choices"][0]["message"]["content"]
    words = text.split()
    assert len(words) >= 3, text
    stop = words[2]  # greedy decoding: the same answer reaches this word again
    body["stop"] = ["never-generated-zzz", stop]
    stopped = (await chat.chat(ChatRequest(body=body, request_id="r-stop"))).body["choices"][0]
    assert stopped["finish_reason"] == "stop" and stopped[STOP_SEQUENCE] == stop
    assert stop not in stopped["message"]["content"]
    chunks = [c async for c in chat.stream_chat(ChatRequest(body={**body, "stream": True}, request_id="r-s"))]
    (finish,) = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish["finish_reason"] == "stop" and finish[STOP_SEQUENCE] == stop


def test_tools_are_refused_unless_the_deployment_ignores_them() -> None:
    tools = [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
    body = {"model": "local/smollm2", "messages": SHORT_PROMPT, "tools": tools, "tool_choice": "auto"}
    chat = provider("smollm2")
    assert chat.deployment.tools == "reject"
    with pytest.raises(InvalidRequest) as caught:
        chat.admit(ChatRequest(body=body, request_id="r"))
    assert caught.value.param == "tools" and "'local/smollm2' cannot call tools" in caught.value.message
    plain = ChatRequest(body={"model": "local/smollm2", "messages": SHORT_PROMPT}, request_id="r")
    assert chat.admit(plain) is plain

    chat.deployment.settings = chat.deployment.settings.model_copy(update={"tools": "ignore"})
    admitted = chat.admit(ChatRequest(body=body, request_id="r", stream=True))
    assert admitted.body == {"model": "local/smollm2", "messages": SHORT_PROMPT} and admitted.stream
    assert "tools" in body  # the caller's body is not changed


@needs_llama
async def test_logprobs_are_the_models_own_in_the_openai_shape() -> None:
    chat = provider("smollm2")
    body: dict[str, Any] = {
        "model": "local/smollm2",
        "messages": LONG_PROMPT,
        "max_tokens": 8,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
    }
    response = await chat.chat(ChatRequest(body=body, request_id="r-lp"))
    validate("CreateChatCompletionResponse", response.body)
    choice = response.body["choices"][0]
    entries = choice["logprobs"]["content"]
    assert response.usage is not None and len(entries) == response.usage.completion_tokens
    # The tokens spell the answer, and greedy decoding picked each one's most likely token.
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    for entry in entries:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 3
        best = entry["top_logprobs"][0]
        assert best["token"] == entry["token"] and abs(best["logprob"] - entry["logprob"]) < 1e-6
        assert [t["logprob"] for t in entry["top_logprobs"]] == sorted(
            (t["logprob"] for t in entry["top_logprobs"]), reverse=True
        )

    chunks = [c async for c in chat.stream_chat(ChatRequest(body={**body, "stream": True}, request_id="r-lps"))]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    streamed = [
        e
        for c in chunks
        if c["choices"] and c["choices"][0]["logprobs"]
        for e in c["choices"][0]["logprobs"]["content"]
    ]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]

    plain = await chat.chat(ChatRequest(body={**body, "logprobs": False, "top_logprobs": 0}, request_id="r-np"))
    assert plain.body["choices"][0]["logprobs"] is None


def test_logprobs_parameters_are_checked() -> None:
    base = {"messages": SHORT_PROMPT}
    for bad, param in (
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": "yes"}, "logprobs"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            to_generation_request({**base, **bad})
        assert caught.value.param == param
    request = to_generation_request({**base, "logprobs": True, "top_logprobs": 5})
    assert request.logprobs and request.top_logprobs == 5


@needs_llama
async def test_n_choices_from_the_local_model_are_separate_generations() -> None:
    from bastion.providers import fanout

    chat = provider("smollm2")
    body = {"model": "local/smollm2", "messages": SHORT_PROMPT, "max_tokens": 6, "n": 2, "seed": 5}
    response = await fanout.chat(chat, ChatRequest(body=body, request_id="r-n"))
    validate("CreateChatCompletionResponse", response.body)
    assert [c["index"] for c in response.body["choices"]] == [0, 1]
    assert response.usage is not None and response.usage.completion_tokens <= 12
    assert response.body["usage"]["completion_tokens"] == response.usage.completion_tokens
