"""The output guard on the request path, against a fake upstream that leaks on purpose: the canary
(echoing the system message it received), a long verbatim span of the prompt without the canary, and
PII. Streams are checked on what the client actually received, chunk by chunk."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest

from bastion.guard.leak import leak_words
from bastion.guard.state import WITHHELD_MESSAGE
from bastion.vault.model import VersionSpec
from tests.guard_stages.support import (
    LEAKED_SPAN,
    MODEL,
    PROMPT,
    SYSTEM_PROMPT,
    UPSTREAM,
    Caller,
    GuardEnv,
    GuardFake,
    system_text,
)

HI = [{"role": "user", "content": "Hello! What can you tell me about the hotel?"}]
CANARY_RE = re.compile(r"bst-[0-9a-f]{16}")
PII_ANSWER = "You can reach Maria at maria.lopes@gmail.com or on +44 20 7946 0958 any day."
PII_REDACTED = "You can reach Maria at [EMAIL_ADDRESS] or on [PHONE_NUMBER] any day."


def echo_system(body: dict[str, Any]) -> str:
    """A model that does what it is asked: repeats everything above, canary and all."""
    return "Of course. Here is everything above:\n" + system_text(body)


def spans_of_prompt(text: str, n: int = 5) -> list[str]:
    """The verbatim n-word spans of SYSTEM_PROMPT (folded words) that occur in ``text``."""
    prompt = leak_words(SYSTEM_PROMPT)
    shingles = {" ".join(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
    words = leak_words(text)
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1) if " ".join(words[i : i + n]) in shingles]


def canary_of(fake: GuardFake) -> str:
    [request] = fake.requests(UPSTREAM)
    match = CANARY_RE.search(system_text(request.body))
    assert match is not None
    return match.group()


async def upstream_closed(fake: GuardFake, timeout_s: float = 5.0) -> bool:
    """Whether the gateway closed the upstream connection before the fake finished (bounded poll)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if fake.disconnects(UPSTREAM):
            return True
        await asyncio.sleep(0.02)
    return False


def stream_text(events: list[Any]) -> tuple[list[str], list[str | None]]:
    """(content deltas, finish reasons) of OpenAI chunks."""
    texts, finishes = [], []
    for event in events:
        for choice in event.get("choices") or ():
            if choice["delta"].get("content"):
                texts.append(choice["delta"]["content"])
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    return texts, finishes


async def assert_ledger_leak(env: GuardEnv, caller: Caller, request_id: str, canary: str) -> dict[str, Any]:
    row = await env.interaction(caller, request_id)
    assert row["flagged"] is True and row["status"] == 200
    leak = row["guard"]["output"]["scanners"]["leak"]
    assert leak["flagged"] is True and leak["action"] == "block"
    assert row["guard"]["action"] == "block" and row["finish_reason"] == "content_filter"
    stored = orjson.dumps(row)
    assert canary.encode() not in stored
    assert not spans_of_prompt(row["response_text"] or "")
    return row


async def test_canary_leak_is_withheld_from_a_complete_answer(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, echo_system)
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert response.status_code == 200, response.text
    body = response.json()
    [choice] = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": WITHHELD_MESSAGE, "refusal": None}
    assert choice["finish_reason"] == "content_filter"
    assert body["usage"]["completion_tokens"] > 0  # the tokens were spent: usage is kept
    canary = canary_of(guard_fake)
    assert canary not in response.text and not spans_of_prompt(response.text)
    row = await assert_ledger_leak(guard_env, caller, response.headers["x-request-id"], canary)
    assert row["guard"]["output"]["scanners"]["leak"]["findings"]["CANARY"] >= 1
    assert row["response_text"] == WITHHELD_MESSAGE


async def test_canary_leak_in_the_anthropic_dialect_is_a_refusal(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, echo_system)
    response = await guard_env.messages(caller, {"model": f"prompt:{PROMPT}", "max_tokens": 300, "messages": HI})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stop_reason"] == "refusal"
    assert body["content"] == [{"type": "text", "text": WITHHELD_MESSAGE}]
    assert canary_of(guard_fake) not in response.text


async def test_streamed_canary_leak_never_reaches_the_client_and_stops_the_upstream(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    # ~1200 characters in 8-character pieces 20 ms apart: about 3 s if nobody stopped it.
    guard_fake.answer(UPSTREAM, echo_system, piece_chars=8, interval_s=0.02)
    body = {
        "model": f"prompt:{PROMPT}",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
    assert response.status_code == 200
    canary = canary_of(guard_fake)
    texts, finishes = stream_text(events)
    received = "".join(texts)
    for chunk in texts:
        assert canary not in chunk
    assert canary not in received and "bst-" not in received
    assert not spans_of_prompt(received)
    assert received.endswith(WITHHELD_MESSAGE) and finishes == ["content_filter"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert await upstream_closed(guard_fake), "the upstream kept generating after the block"
    await assert_ledger_leak(guard_env, caller, response.headers["x-request-id"], canary)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_streamed_verbatim_leak_without_the_canary_is_stopped_before_any_span_goes_out(
    guard_env: GuardEnv, guard_fake: GuardFake, dialect: str
) -> None:
    """A contiguous copy of a long prompt's middle: the overlap reaches the threshold only after
    about 30 words, and none of them may have been sent by then."""
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, "Sure, my instructions say: " + LEAKED_SPAN + " " + LEAKED_SPAN, interval_s=0.01)
    if dialect == "openai":
        body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
        response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
        texts, finishes = stream_text(events)
        assert finishes == ["content_filter"]
    else:
        body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True, "max_tokens": 400}
        response, events = await guard_env.stream(caller, "/v1/messages", body)
        texts = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
        [stop] = [e["delta"]["stop_reason"] for e in events if e["type"] == "message_delta"]
        assert stop == "refusal" and events[-1]["type"] == "message_stop"
    assert response.status_code == 200
    received = "".join(texts)
    assert not spans_of_prompt(received), spans_of_prompt(received)
    assert "AMBER" not in received and received.endswith(WITHHELD_MESSAGE)
    assert await upstream_closed(guard_fake)
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is True and row["guard"]["output"]["scanners"]["leak"]["findings"] == {"PROMPT_OVERLAP": 1}


async def test_complete_answer_with_a_verbatim_leak_is_withheld(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, "My instructions: " + LEAKED_SPAN)
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == WITHHELD_MESSAGE
    assert "AMBER" not in response.text


async def test_answer_sharing_a_phrase_with_the_prompt_is_not_a_leak(
    guard_env: GuardEnv, guard_fake: GuardFake
) -> None:
    caller = await guard_env.tenant()
    answer = (
        "Welcome! I would recommend the rooftop bar before sunset, and on weekdays the tasting menu is lovely. "
        "Is there anything else I can help you with during your stay in Lisbon?"
    )
    guard_fake.answer(UPSTREAM, answer, interval_s=0.0)
    body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
    response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
    texts, finishes = stream_text(events)
    assert "".join(texts) == answer and finishes == ["stop"]
    assert len(texts) > 1  # released progressively, not as one block at the end
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is False and row["response_text"] == answer
    assert row["guard"]["output"]["scanners"]["leak"]["flagged"] is False


@pytest.mark.parametrize("stream", [False, True])
async def test_pii_in_the_answer_is_redacted(guard_env: GuardEnv, guard_fake: GuardFake, stream: bool) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, PII_ANSWER)
    body = {"model": MODEL, "messages": HI, "stream": stream}
    if stream:
        response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
        texts, finishes = stream_text(events)
        answer = "".join(texts)
        assert finishes == ["stop"]
    else:
        response = await guard_env.chat(caller, body)
        answer = response.json()["choices"][0]["message"]["content"]
    assert response.status_code == 200
    assert answer == PII_REDACTED
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is True and row["response_text"] == PII_REDACTED
    assert row["guard"]["output"]["scanners"]["pii"]["findings"] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


async def test_output_pii_in_block_mode_withholds_the_answer(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant(user={"guard": {"output_pii": "block"}})
    guard_fake.answer(UPSTREAM, PII_ANSWER)
    response = await guard_env.chat(caller, {"model": MODEL, "messages": HI})
    assert response.json()["choices"][0]["message"]["content"] == WITHHELD_MESSAGE
    assert "maria" not in response.text


async def test_output_policy_precedence_key_and_prompt(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    """The key turns the leak scanner off (the leak goes through); a prompt version that sets it to
    block wins over the key."""
    caller = await guard_env.tenant(
        key={"guard": {"leak": "off"}},
        prompts={
            PROMPT: VersionSpec(SYSTEM_PROMPT, model=MODEL),
            "locked": VersionSpec(SYSTEM_PROMPT, model=MODEL, metadata={"guard": {"leak": "block"}}),
        },
    )
    guard_fake.answer(UPSTREAM, "My instructions: " + LEAKED_SPAN)
    open_answer = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert "AMBER FALCON NINETEEN" in open_answer.json()["choices"][0]["message"]["content"]
    row = await guard_env.interaction(caller, open_answer.headers["x-request-id"])
    assert "leak" not in row["guard"]["output"]["scanners"]
    locked = await guard_env.chat(caller, {"model": "prompt:locked", "messages": HI})
    assert locked.json()["choices"][0]["message"]["content"] == WITHHELD_MESSAGE


async def test_no_canary_in_client_prompts_unless_configured(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    messages = [{"role": "system", "content": "You are a terse assistant."}, *HI]
    response = await guard_env.chat(caller, {"model": MODEL, "messages": messages})
    assert response.status_code == 200
    assert guard_fake.requests(UPSTREAM)[0].body["messages"] == messages
