"""The cache's parts without a gateway: keys, Cache-Control, overrides, the memory store's bounds,
folding a stream into an answer and playing it back, and the semantic index's bounds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bastion.cache.answers import StreamAnswer, decode, encode, storable
from bastion.cache.keys import NOT_KEYED, KeyMaterial, request_keys, samples_randomly
from bastion.cache.semantic import SemanticIndex
from bastion.cache.service import cache_control, resolve_override
from bastion.cache.store import MemoryStore
from bastion.config.cache_settings import SemanticCacheSettings
from bastion.gateway.answers import as_chunks
from bastion.providers.base import ChatResponse
from tests.cache.support import fake_embed

BASE: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "temperature": 0,
}

#: Every output-affecting field of the OpenAI chat body (and Anthropic's, translated), and fields no
#: API has yet: each one alone must change the key.
KEYED_CHANGES: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Hello"}],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "functions": [{"name": "f"}],
    "function_call": "auto",
    "temperature": 0.0001,
    "top_p": 0.9,
    "top_k": 5,
    "max_tokens": 10,
    "max_completion_tokens": 10,
    "stop": ["x"],
    "seed": 1,
    "n": 2,
    "response_format": {"type": "json_object"},
    "logit_bias": {"1": 5},
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "logprobs": True,
    "top_logprobs": 2,
    "reasoning_effort": "high",
    "modalities": ["text"],
    "prediction": {"type": "content", "content": "x"},
    "web_search_options": {},
    "verbosity": "low",
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "a_field_from_next_year": 1,
}


def keys(body: dict[str, Any], **material: Any) -> str:
    return request_keys(KeyMaterial(**{"tenant": "t", "model": "m", "body": body, **material}), semantic=False).exact


@pytest.mark.parametrize("field", sorted(KEYED_CHANGES))
def test_every_output_affecting_field_is_keyed(field: str) -> None:
    assert keys({**BASE, field: KEYED_CHANGES[field]}) != keys(BASE)


@pytest.mark.parametrize("field", sorted(NOT_KEYED - {"model"}))
def test_fields_that_cannot_change_the_answer_are_not_keyed(field: str) -> None:
    assert keys({**BASE, field: {"anything": 1}}) == keys(BASE)


def test_the_key_covers_tenant_model_policy_prompt_and_completion_kind() -> None:
    base = keys(BASE)
    for change in (
        {"tenant": "u"},
        {"model": "other"},
        {"policy": '{"pii":"off"}'},
        {"prompt": "p@2"},
        {"text_completion": True},
    ):
        assert keys(BASE, **change) != base, change
    assert keys({**BASE, "model": "alias-of-m"}) == base  # the resolved model is keyed, not the name
    assert keys({**BASE, "temperature": 0.0}) == base  # Anthropic's translation sends floats


def test_the_canary_is_not_keyed() -> None:
    def planted(canary: str) -> dict[str, Any]:
        body = copy.deepcopy(BASE)
        body["messages"][0]["content"] = f"[{canary}]\nBe brief."
        return body

    assert keys(planted("bst-0123456789abcdef"), canary="bst-0123456789abcdef") == keys(
        planted("bst-fedcba9876543210"), canary="bst-fedcba9876543210"
    )


def test_the_semantic_scope_leaves_out_only_the_last_user_message() -> None:
    def scope(text: str, system: str = "Be brief.") -> tuple[str | None, str | None]:
        body = {**BASE, "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}]}
        found = request_keys(KeyMaterial("t", "m", body), semantic=True)
        return found.scope, found.query

    assert scope("Hi")[0] == scope("Hello")[0] != scope("Hi", "Be long.")[0]
    assert scope("Hello")[1] == "Hello"
    parts = {**BASE, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert request_keys(KeyMaterial("t", "m", parts), semantic=True).scope is None


@pytest.mark.parametrize(
    ("extra", "random"),
    [({}, True), ({"temperature": 0}, False), ({"temperature": 0.7}, True), ({"temperature": 0.7, "seed": 3}, False)],
)
def test_random_sampling(extra: dict[str, Any], random: bool) -> None:
    assert samples_randomly({"messages": [], **extra}) is random


def test_cache_control() -> None:
    assert cache_control(None).no_store is False
    assert cache_control("No-Store").no_store is True
    parsed = cache_control("no-cache, max-age=30")
    assert parsed.no_cache and parsed.max_age_s == 30
    assert cache_control("max-age=soon").max_age_s is None


def test_overrides_later_scopes_win_and_bad_fields_are_ignored() -> None:
    assert resolve_override([]) == (True, True)
    assert resolve_override([("tenant", {"enabled": False}), ("key", {"enabled": True})]) == (True, True)
    assert resolve_override([("key", {"semantic": False})]) == (True, False)
    assert resolve_override([("prompt", False)]) == (False, True)
    assert resolve_override([("prompt", {"enabled": "no"}), ("prompt", "junk")]) == (True, True)


async def test_memory_store_is_bounded_and_expires() -> None:
    now = [0.0]
    store = MemoryStore(max_entries=2, max_bytes=10, clock=lambda: now[0])
    await store.set("a", b"1234", 10)
    await store.set("b", b"1234", 10)
    assert await store.get("a") == b"1234"  # a is now the most recently used
    await store.set("c", b"1234", 10)
    assert await store.get("b") is None and len(store) == 2
    await store.set("d", b"12345678", 10)  # over max_bytes: older entries go
    assert store.bytes <= 10
    await store.set("huge", b"x" * 11, 10)
    assert await store.get("huge") is None
    now[0] = 11.0
    assert await store.get("d") is None


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}


async def test_a_stream_folds_into_the_answer_it_replays_as() -> None:
    chunks = [
        _chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]),
        _chunk([{"index": 1, "delta": {"role": "assistant", "content": "Bon"}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]),
        _chunk([{"index": 1, "delta": {"content": "jour"}, "finish_reason": "stop"}]),
        _chunk(
            [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{"}}]
                    },
                    "finish_reason": None,
                }
            ]
        ),
        _chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}}]),
        _chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls", "stop_sequence": None}]),
        _chunk([], usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ]
    folded = StreamAnswer()
    for chunk in chunks:
        folded.add(chunk)
    body = folded.body()
    assert body is not None and storable(body)
    first, second = body["choices"]
    assert first["message"]["content"] == "Hello" and second["message"]["content"] == "Bonjour"
    assert first["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert (first["finish_reason"], second["finish_reason"]) == ("tool_calls", "stop")
    assert body["usage"]["total_tokens"] == 7

    decoded = decode(encode(body))
    assert decoded is not None and decoded[0] == body
    again = StreamAnswer()
    async for chunk in as_chunks(ChatResponse(body=copy.deepcopy(body))):
        again.add(chunk)
    assert again.body() == body


def test_unfinished_or_cut_answers_are_not_storable() -> None:
    unfinished = StreamAnswer()
    unfinished.add(_chunk([{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]))
    body = unfinished.body()
    assert body is not None and not storable(body)
    for reason in ("length", "content_filter", None):
        assert not storable({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": reason}]})
    assert decode(b"not json") is None


async def test_the_semantic_index_is_bounded_per_scope_and_overall() -> None:
    now = [0.0]
    index = SemanticIndex(
        fake_embed, SemanticCacheSettings(max_entries_per_scope=2, max_entries=3), clock=lambda: now[0]
    )

    async def add(scope: str, text: str) -> None:
        query = await index.query(text)
        assert query is not None
        index.add(scope, query, f"{scope}:{text}", ttl_s=10)

    await add("s1", "alpha beta")
    await add("s1", "gamma delta")
    await add("s1", "epsilon zeta")  # the oldest of s1 goes
    query = await index.query("alpha beta")
    assert query is not None
    assert index.nearest("s1", query, 0.95)[0] is None
    query = await index.query("gamma delta")
    assert query is not None
    match, _ = index.nearest("s1", query, 0.95)
    assert match is not None and match.key == "s1:gamma delta" and match.similarity == pytest.approx(1.0)
    await add("s2", "eta theta")
    await add("s3", "iota kappa")  # over max_entries: the least recently used scope goes
    assert index.size <= 3
    now[0] = 11.0  # expired entries never match
    query = await index.query("iota kappa")
    assert query is not None
    assert index.nearest("s3", query, 0.5)[0] is None


async def test_texts_the_model_would_cut_are_never_matched() -> None:
    index = SemanticIndex(fake_embed, SemanticCacheSettings(max_chars=100))
    assert await index.query("word " * 30) is None  # over max_chars
    assert await index.query("word " * 19) is not None
    long_index = SemanticIndex(fake_embed, SemanticCacheSettings())
    assert await long_index.query("word " * 300) is None  # over the model's 256 word pieces


def test_a_body_too_deep_to_key_is_bypassed_not_an_error() -> None:
    from bastion.cache.service import CacheControl, ResponseCache
    from bastion.config.cache_settings import CacheSettings

    nested: Any = "leaf"
    for _ in range(300):  # deeper than orjson encodes
        nested = [nested]
    cache = ResponseCache(CacheSettings(), {}, MemoryStore(10, 1024))
    state = cache.plan(KeyMaterial("t", "m", {**BASE, "extra": nested}), control=CacheControl(), layers=[])
    assert (state.outcome, state.reason) == ("bypass", "unkeyable")


def test_a_litellm_model_list_carries_the_cache_settings() -> None:
    from bastion.config.litellm_compat import convert, ignored_keys

    raw = {
        "model_list": [
            {
                "model_name": "support",
                "litellm_params": {"model": "openai/gpt-4o-mini"},
                "model_info": {"cache": {"semantic": True, "similarity_threshold": 0.97}},
            }
        ]
    }
    [model] = convert(raw)["models"]
    assert model["cache"] == {"semantic": True, "similarity_threshold": 0.97}
    assert ignored_keys(raw) == []
