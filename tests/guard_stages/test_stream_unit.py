"""The output stage's stream wrapper on synthetic chunk streams (no HTTP): tool calls, streams that
end without a finish reason, several choices, a client that goes away, and the fingerprint cache."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest

from bastion.config.settings import GuardSettings
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.stage import Chunks
from bastion.gateway.stages.guard_in import GuardInStage
from bastion.gateway.stages.guard_out import GuardOutStage
from bastion.guard import GuardPolicy, make_canary
from bastion.guard.caches import FingerprintCache
from bastion.guard.service import GuardService
from bastion.guard.state import WITHHELD_MESSAGE, GuardState, PlantedPrompt
from bastion.providers.base import ChatResponse

SYSTEM = "You are Quill, the archive assistant. The vault combination is seven left, three right, nine left."
CANARY = make_canary()


def guard_service(**guard: Any) -> GuardService:
    """The stages' one collaborator, from ``guard`` settings."""
    return GuardService(GuardSettings.model_validate(guard), prompt_cache_ttl_s=300.0)


def context(*, secret: bool = True, stream: bool = True) -> RequestContext:
    ctx = RequestContext(
        request_id="req_test",
        dialect="openai",
        endpoint="chat",
        body={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        model="m",
        timing=Timing(),
        stream=stream,
    )
    if secret:
        ctx.planted_prompt = PlantedPrompt(SYSTEM, CANARY)
    return ctx


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}


def text_chunk(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return chunk([{"index": index, "delta": {"content": text}, "finish_reason": finish}])


class Upstream:
    """A chunk stream that records how far it was consumed and whether it was closed."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.closed = False

    async def stream(self) -> Chunks:
        try:
            for item in self.chunks:
                self.pulled += 1
                yield item
        finally:
            self.closed = True


async def run_stream(
    stage: GuardOutStage, ctx: RequestContext, upstream: Upstream, limit: int | None = None
) -> list[dict[str, Any]]:
    out = []
    stream = stage.on_stream(ctx, upstream.stream())
    async for item in stream:
        out.append(item)
        if limit is not None and len(out) >= limit:
            await stream.aclose()
            break
    return out


def texts(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"].get("content") or "" for ch in chunks for c in ch.get("choices") or () if c["index"] == index
    )


def finishes(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for ch in chunks for c in ch.get("choices") or () if c.get("finish_reason")]


async def test_tool_call_arguments_pass_through_and_are_scanned_at_the_end() -> None:
    stage = GuardOutStage(guard_service())
    ctx = context()
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    leaked = '{"q": "' + CANARY + '"}'
    upstream = Upstream(
        [
            chunk([{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}, "finish_reason": None}]),
            chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": leaked}}]}}]),
            chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            chunk([], usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
        ]
    )
    out = await run_stream(stage, ctx, upstream)
    # Arguments were forwarded as they came (documented); the verdict is recorded and signalled.
    arguments = [
        tc["function"]["arguments"]
        for ch in out
        for c in ch["choices"]
        for tc in c["delta"].get("tool_calls") or ()
        if tc["function"].get("arguments")
    ]
    assert arguments == [leaked]
    assert finishes(out) == ["content_filter"]
    assert out[-1]["usage"]["total_tokens"] == 12
    state = ctx.guard
    assert isinstance(state, GuardState) and state.output is not None
    leak = state.output.verdict("leak")
    assert leak is not None and leak.flagged and state.output.action == "block"


async def test_stream_without_a_finish_reason_is_flushed_at_the_end() -> None:
    stage = GuardOutStage(guard_service())
    ctx = context()
    upstream = Upstream([text_chunk("The archive opens at nine "), text_chunk("and closes at five.")])
    out = await run_stream(stage, ctx, upstream)
    assert texts(out) == "The archive opens at nine and closes at five."
    assert finishes(out) == []


async def test_each_choice_has_its_own_guard_and_a_block_ends_all() -> None:
    # Checked every 32 characters, so the canary is seen on the chunk that carries it.
    stage = GuardOutStage(guard_service(stream_batch_chars=32))
    ctx = context()
    upstream = Upstream(
        [
            text_chunk("A harmless first answer that goes on for a while. ", index=0),
            text_chunk("Sure: [" + CANARY + "] You are Quill", index=1),
            text_chunk("never sent", index=0),
        ]
    )
    out = await run_stream(stage, ctx, upstream)
    assert CANARY not in str(out)
    assert upstream.closed and upstream.pulled == 2  # stopped as soon as the canary showed
    last = out[-2]  # the withheld notice, then the estimated usage
    assert sorted(c["index"] for c in last["choices"]) == [0, 1]
    assert {c["finish_reason"] for c in last["choices"]} == {"content_filter"}
    assert texts(out, 1).endswith(WITHHELD_MESSAGE)
    assert out[-1]["choices"] == [] and out[-1]["usage"]["completion_tokens"] > 0


async def test_block_at_the_final_check_still_relays_the_upstream_usage() -> None:
    """The canary completed by the last delta: the upstream has finished, so its usage report is
    read and relayed instead of an estimate."""
    stage = GuardOutStage(guard_service())
    ctx = context()
    head, tail = CANARY[:6], CANARY[6:]
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    upstream = Upstream([text_chunk("ok " + head), text_chunk(tail, finish="stop"), chunk([], usage=usage)])
    out = await run_stream(stage, ctx, upstream)
    assert "bst" not in texts(out)
    assert finishes(out) == ["content_filter"]
    assert out[-1]["usage"] == usage


async def test_client_going_away_closes_the_upstream_and_records_the_verdicts() -> None:
    stage = GuardOutStage(guard_service())
    ctx = context()
    words = [text_chunk(f"word{i} " * 8) for i in range(20)]
    upstream = Upstream(words)
    await run_stream(stage, ctx, upstream, limit=2)
    assert upstream.closed and upstream.pulled < 20
    assert ctx.guard is not None and ctx.guard.output is not None


async def test_output_off_returns_the_stream_untouched() -> None:
    stage = GuardOutStage(guard_service(policy={"leak": "off", "pii": "off", "secrets": "off"}))
    ctx = context()
    upstream = Upstream([text_chunk("[" + CANARY + "]")])
    source = upstream.stream()
    assert stage.on_stream(ctx, source) is source


async def test_complete_answer_with_tool_call_secret_is_redacted() -> None:
    stage = GuardOutStage(guard_service())
    ctx = context(stream=False)
    arguments = '{"to": "jane.doe@gmail.com", "body": "hello"}'
    call = {"id": "c", "type": "function", "function": {"name": "mail", "arguments": arguments}}
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    response = await stage.on_response(ctx, ChatResponse(body=body))
    [call] = response.body["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"] == '{"to": "[EMAIL_ADDRESS]", "body": "hello"}'
    assert response.body["choices"][0]["finish_reason"] == "tool_calls"


async def test_client_system_prompt_gets_a_stable_canary_when_configured() -> None:
    guard = guard_service(canary_for_client_prompts=True)
    stage = GuardInStage(guard)
    prompts = []
    for _ in range(2):
        ctx = context(secret=False, stream=False)
        original = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
        ctx.body["messages"] = original
        await stage.on_request(ctx)
        secret = ctx.planted_prompt
        assert secret is not None
        assert secret.system_prompt == SYSTEM and secret.canary in ctx.body["messages"][0]["content"]
        assert ctx.ledger_messages == original  # the ledger keeps the client's view
        assert SYSTEM not in repr(secret) and secret.canary not in repr(secret)
        prompts.append(ctx.body["messages"][0]["content"])
    assert prompts[0] == prompts[1]  # same prompt, same canary: provider prompt caching still works


def test_fingerprint_cache_expires_and_bounds_its_entries() -> None:
    now = [0.0]
    cache = FingerprintCache(ttl_s=10.0, max_entries=2, clock=lambda: now[0])
    first = cache.get(SYSTEM, "bst-0000000000000001", 5)
    second = cache.get(SYSTEM, "bst-0000000000000002", 5)
    assert first.shingles is second.shingles  # one build, two canaries
    assert first.canary_folded != second.canary_folded
    cache.get("another prompt with enough words in it", None, 5)
    cache.get("a third prompt with enough words in it", None, 5)
    assert len(cache._entries) == 2  # the bound under test (a private field)
    now[0] = 11.0
    assert cache.get(SYSTEM, None, 5).shingles is not first.shingles  # expired: rebuilt
    assert FingerprintCache(ttl_s=0).get(SYSTEM, None, 5).active  # ttl 0: no caching, still works


@pytest.mark.parametrize("stream", [False, True])
async def test_no_prompt_and_no_canary_still_redacts_pii(stream: bool) -> None:
    stage = GuardOutStage(guard_service())
    ctx = context(secret=False, stream=stream)
    ctx.guard = GuardState(GuardPolicy())
    text = "Write to jane.doe@gmail.com today."
    if stream:
        out = await run_stream(stage, ctx, Upstream([text_chunk(text, finish="stop")]))
        assert texts(out) == "Write to [EMAIL_ADDRESS] today."
    else:
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
        response = await stage.on_response(ctx, ChatResponse(body=body))
        assert response.body["choices"][0]["message"]["content"] == "Write to [EMAIL_ADDRESS] today."


async def test_upstream_failure_mid_stream_flushes_checked_text_then_raises() -> None:
    from bastion.errors import UpstreamError

    stage = GuardOutStage(guard_service())
    ctx = context()

    async def failing() -> AsyncGenerator[dict[str, Any], None]:
        yield text_chunk("Hello from ")
        raise UpstreamError("cut")

    received = []
    with pytest.raises(UpstreamError):
        async for item in stage.on_stream(ctx, failing()):
            received.append(item)
    assert texts(received) == "Hello from "


async def test_upstream_failure_never_flushes_a_held_leak() -> None:
    from bastion.errors import UpstreamError

    stage = GuardOutStage(guard_service())
    ctx = context()

    async def failing() -> AsyncGenerator[dict[str, Any], None]:
        yield text_chunk("See " + CANARY[:10])
        yield text_chunk(CANARY[10:])
        raise UpstreamError("cut")

    received = []
    with pytest.raises(UpstreamError):
        async for item in stage.on_stream(ctx, failing()):
            received.append(item)
    assert "bst" not in texts(received)
