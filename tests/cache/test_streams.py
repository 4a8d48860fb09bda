"""Cached answers served as streams, in both dialects, equal to the original answer; a streamed
answer is stored too, and served to a non-streamed request."""

from __future__ import annotations

from typing import Any

from tests.cache.support import MODEL, UPSTREAM, CacheEnv, json_body
from tests.guard_stages.support import GuardFake

QUESTION = [{"role": "user", "content": "Describe the colour of the sea in one sentence."}]
ANSWER = "The sea is a deep, shifting blue with flecks of green."


def openai_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": QUESTION, "temperature": 0, **extra}


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 64, "messages": QUESTION, "temperature": 0, **extra}


async def test_a_stored_answer_streams_in_the_openai_dialect(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    guard_fake.answer(UPSTREAM, ANSWER)
    original = await cache_env.chat(caller, openai_body())
    assert original.headers["x-bastion-cache"] == "miss"
    body = openai_body(stream=True, stream_options={"include_usage": True})
    response, text, events = await cache_env.stream_texts(caller, "/v1/chat/completions", body)
    assert response.status_code == 200
    assert response.headers["x-bastion-cache"] == "hit"
    assert text == ANSWER == json_body(original)["choices"][0]["message"]["content"]
    assert events[-1]["usage"] == json_body(original)["usage"]
    assert [c["finish_reason"] for e in events for c in e["choices"] if c.get("finish_reason")] == ["stop"]
    assert guard_fake.attempts(UPSTREAM) == 1
    row = await cache_env.interaction(caller, response.headers["x-request-id"])
    assert row["extra"]["cache"] == "hit" and row["stream"] is True and row["response_text"] == ANSWER


async def test_a_streamed_answer_is_stored_and_served_both_ways(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    guard_fake.answer(UPSTREAM, ANSWER, piece_chars=5)
    response, text, _ = await cache_env.stream_texts(caller, "/v1/chat/completions", openai_body(stream=True))
    assert response.headers["x-bastion-cache"] == "miss" and text == ANSWER
    again, text, _ = await cache_env.stream_texts(caller, "/v1/chat/completions", openai_body(stream=True))
    assert again.headers["x-bastion-cache"] == "hit" and text == ANSWER
    complete = await cache_env.chat(caller, openai_body())
    assert complete.headers["x-bastion-cache"] == "hit"
    assert json_body(complete)["choices"][0]["message"]["content"] == ANSWER
    assert json_body(complete)["choices"][0]["finish_reason"] == "stop"
    assert guard_fake.attempts(UPSTREAM) == 1


async def test_a_stored_answer_streams_in_the_anthropic_dialect(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    guard_fake.answer(UPSTREAM, ANSWER)
    original = await cache_env.messages(caller, anthropic_body())
    assert original.status_code == 200, original.text
    assert original.headers["x-bastion-cache"] == "miss"
    [block] = original.json()["content"]
    response, text, events = await cache_env.stream_texts(caller, "/v1/messages", anthropic_body(stream=True))
    assert response.status_code == 200
    assert response.headers["x-bastion-cache"] == "hit"
    assert text == block["text"] == ANSWER
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    [delta] = [event for event in events if event["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == original.json()["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == original.json()["usage"]["output_tokens"]
    # The Anthropic request and the OpenAI request are the same call inside: they share the entry.
    openai = await cache_env.chat(caller, {**openai_body(), "max_tokens": 64})
    assert openai.headers["x-bastion-cache"] == "hit"
    assert guard_fake.attempts(UPSTREAM) == 1


async def test_a_stream_cut_short_is_not_stored(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    guard_fake.script(UPSTREAM, ["cut"])
    response, _, events = await cache_env.stream_texts(caller, "/v1/chat/completions", openai_body(stream=True))
    assert response.headers["x-bastion-cache"] == "miss"
    assert any("error" in event for event in events)
    again = await cache_env.chat(caller, openai_body())
    assert again.headers["x-bastion-cache"] == "miss"
    assert guard_fake.attempts(UPSTREAM) == 2


async def test_tool_calls_survive_the_round_trip(cache_env: CacheEnv, guard_fake: GuardFake) -> None:
    caller = await cache_env.tenant()
    guard_fake.default(UPSTREAM, "tools")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                },
            },
        }
    ]
    body = openai_body(tools=tools, stream=True)
    first, _, _ = await cache_env.stream_texts(caller, "/v1/chat/completions", body)
    assert first.headers["x-bastion-cache"] == "miss"
    complete = await cache_env.chat(caller, openai_body(tools=tools))
    assert complete.headers["x-bastion-cache"] == "hit"
    choice = json_body(complete)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup"
    assert call["function"]["arguments"].replace(" ", "") == '{"city":"test","days":1}'
    replay, _, replayed = await cache_env.stream_texts(caller, "/v1/chat/completions", body)
    assert replay.headers["x-bastion-cache"] == "hit"
    calls = [c for e in replayed for ch in e["choices"] for c in (ch.get("delta") or {}).get("tool_calls") or ()]
    assert calls[0]["id"] == call["id"] and calls[0]["function"]["arguments"] == call["function"]["arguments"]
    assert guard_fake.attempts(UPSTREAM) == 1


async def test_legacy_completions_and_the_responses_api_are_served_from_the_cache(
    cache_env: CacheEnv, guard_fake: GuardFake
) -> None:
    caller = await cache_env.tenant()
    guard_fake.answer(UPSTREAM, ANSWER)
    completion = {"model": MODEL, "prompt": "The sea is", "temperature": 0, "max_tokens": 16}
    first = await cache_env.client.post("/v1/completions", json=completion, headers=caller.headers())
    assert first.status_code == 200, first.text
    assert first.headers["x-bastion-cache"] == "miss"
    response, events = await cache_env.stream(caller, "/v1/completions", {**completion, "stream": True})
    assert response.headers["x-bastion-cache"] == "hit"
    assert "".join(c["text"] for e in events for c in e["choices"]) == first.json()["choices"][0]["text"] == ANSWER

    request = {"model": MODEL, "input": "Describe the sea.", "temperature": 0}
    stored = await cache_env.client.post("/v1/responses", json=request, headers=caller.headers())
    assert stored.status_code == 200, stored.text
    again = await cache_env.client.post("/v1/responses", json=request, headers=caller.headers())
    assert (stored.headers["x-bastion-cache"], again.headers["x-bastion-cache"]) == ("miss", "hit")
    assert again.json()["output"][0]["content"][0]["text"] == ANSWER
    assert guard_fake.attempts(UPSTREAM) == 2
