"""``n > 1``: passed to upstreams that serve it, made of ``n`` calls for those that do not, with
distinct choice indexes, interleaved stream chunks and summed usage; reservations scale with n."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import UpstreamError
from bastion.providers import fanout
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Provider
from bastion.spend.estimate import completion_tokens
from bastion.spend.pricing import Price
from tests.fidelity.support import CHAT, CHAT_UPSTREAM, CLAUDE, CLAUDE_UPSTREAM, USER, fidelity_gateway, openai_events
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.openai_spec import validate


async def test_n_goes_upstream_where_it_is_served(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/chat/completions", json={"model": CHAT, "messages": USER, "n": 3})
    assert response.status_code == 200
    validate("CreateChatCompletionResponse", response.json())
    (request,) = fake.requests(CHAT_UPSTREAM)
    assert request.body["n"] == 3


async def test_n_calls_make_one_answer_with_summed_usage(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    async with fidelity_gateway(tmp_path, fake) as env:
        single = (await env.client.post("/v1/chat/completions", json={"model": CLAUDE, "messages": USER})).json()
        fake.reset()
        response = await env.client.post("/v1/chat/completions", json={"model": CLAUDE, "messages": USER, "n": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    validate("CreateChatCompletionResponse", body)
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in body["choices"]} == {answer_text(CLAUDE_UPSTREAM)}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert body["usage"][key] == 3 * single["usage"][key], key
    requests = fake.requests(CLAUDE_UPSTREAM)
    assert len(requests) == 3 and all("n" not in r.body for r in requests)


async def test_streamed_choices_are_interleaved_by_index(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    body = {"model": CLAUDE, "messages": USER, "n": 3, "stream": True, "stream_options": {"include_usage": True}}
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    *chunks, done = openai_events(response.content)
    assert done == "[DONE]"
    text: dict[int, str] = defaultdict(str)
    finished: set[int] = set()
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        for choice in chunk["choices"]:
            text[choice["index"]] += choice["delta"].get("content") or ""
            if choice["finish_reason"]:
                finished.add(choice["index"])
    assert dict(text) == {i: answer_text(CLAUDE_UPSTREAM) for i in range(3)} and finished == {0, 1, 2}
    assert len({chunk["id"] for chunk in chunks}) == 1
    usage_chunks = [chunk for chunk in chunks if chunk.get("usage")]
    assert usage_chunks == [chunks[-1]] and chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3 * len(answer_text(CLAUDE_UPSTREAM).split(" "))


class _Flaky(Provider):
    """Answers one chunk then fails on its second call."""

    calls = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        type(self).calls += 1
        failing = type(self).calls == 2
        yield {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
        if failing:
            raise UpstreamError("upstream broke mid-stream")
        yield {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


async def test_a_failing_call_fails_the_merged_stream() -> None:
    from bastion.config.settings import DeploymentSettings, TimeoutSettings
    from bastion.providers.base import Deployment

    settings = DeploymentSettings(provider="local", model="smollm2")
    provider = _Flaky(Deployment(id="d", alias="a", settings=settings, timeouts=TimeoutSettings()))
    request = ChatRequest(body={"messages": USER, "n": 2}, request_id="r", stream=True)
    seen: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError, match="broke mid-stream"):
        async for chunk in fanout.stream(provider, request):
            seen.append(chunk)
    assert seen and all(len(chunk["choices"]) == 1 for chunk in seen)


def test_the_reservation_estimate_scales_with_n() -> None:
    price = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    assert completion_tokens({"max_tokens": 100, "n": 4}, price, 256) == 400
    assert completion_tokens({"max_tokens": 100}, price, 256) == 100
    assert completion_tokens({"n": 3}, price, 256) == 768
