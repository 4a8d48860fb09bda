"""Disguised copies of the vault prompt on the request path: a fake upstream that answers with the
system prompt it received in rot13, base64, letter-spaced or reversed. The client gets the withheld
message, and the ledger row is flagged and holds no copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bastion.guard import GuardPolicy, OutputGuard
from bastion.guard.state import WITHHELD_MESSAGE
from tests.guard.disguises import COPIES, answer, b64
from tests.guard_stages.support import PROMPT, SYSTEM_PROMPT, UPSTREAM, Caller, GuardEnv, GuardFake, system_text
from tests.guard_stages.test_output import HI, canary_of, stream_text, upstream_closed

#: What the client received must not be a leak by itself.
CHECK = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT)


def disguised_system(disguise: Callable[[str], str], *, with_canary: bool) -> Callable[[dict[str, Any]], str]:
    """A model that repeats its instructions in disguise: the system message as received (canary
    included) or the vault prompt alone."""
    return lambda body: answer(disguise(system_text(body) if with_canary else SYSTEM_PROMPT))


async def assert_ledger_withheld(
    env: GuardEnv, caller: Caller, request_id: str, payload: str, finding: str
) -> dict[str, Any]:
    row = await env.interaction(caller, request_id)
    assert row["flagged"] is True and row["status"] == 200 and row["finish_reason"] == "content_filter"
    leak = row["guard"]["output"]["scanners"]["leak"]
    assert leak["flagged"] is True and leak["action"] == "block" and finding in leak["findings"]
    # A stream may have released the copy's start, under the threshold (like a verbatim copy): never more.
    assert payload[len(payload) // 2 :][:40] not in orjson.dumps(row).decode()
    assert not CHECK.scan_text(row["response_text"] or "").flagged
    return row


@pytest.mark.parametrize(
    ("name", "with_canary", "finding"),
    [
        ("rot13", True, "CANARY"),
        ("base64", False, "PROMPT_TRANSFORMED"),
        ("hex", False, "PROMPT_TRANSFORMED"),
        ("letter-spaced", False, "PROMPT_OVERLAP"),
        ("reversed", False, "PROMPT_TRANSFORMED"),
    ],
)
async def test_disguised_copy_is_withheld_from_a_complete_answer(
    guard_env: GuardEnv, guard_fake: GuardFake, name: str, with_canary: bool, finding: str
) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, disguised_system(COPIES[name], with_canary=with_canary))
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert response.status_code == 200, response.text
    [choice] = response.json()["choices"]
    assert choice["message"] == {"role": "assistant", "content": WITHHELD_MESSAGE, "refusal": None}
    assert choice["finish_reason"] == "content_filter"
    [request] = guard_fake.requests(UPSTREAM)
    sent = COPIES[name](system_text(request.body) if with_canary else SYSTEM_PROMPT)
    assert sent[:40] not in response.text
    row = await assert_ledger_withheld(guard_env, caller, response.headers["x-request-id"], sent, finding)
    assert row["response_text"] == WITHHELD_MESSAGE
    stored = orjson.dumps(row).decode()
    assert sent[:40] not in stored and canary_of(guard_fake) not in stored


@pytest.mark.parametrize(("name", "with_canary"), [("rot13", True), ("letter-spaced", False), ("base64", False)])
async def test_streamed_disguised_copy_is_stopped(
    guard_env: GuardEnv, guard_fake: GuardFake, name: str, with_canary: bool
) -> None:
    caller = await guard_env.tenant()
    guard_fake.answer(UPSTREAM, disguised_system(COPIES[name], with_canary=with_canary), interval_s=0.005)
    body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
    response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
    assert response.status_code == 200
    texts, finishes = stream_text(events)
    received = "".join(texts)
    assert received.endswith(WITHHELD_MESSAGE) and finishes == ["content_filter"]
    assert not CHECK.scan_text(received.removesuffix(WITHHELD_MESSAGE)).flagged
    [request] = guard_fake.requests(UPSTREAM)
    sent = COPIES[name](system_text(request.body) if with_canary else SYSTEM_PROMPT)
    assert len(received) < len(sent) // 2
    assert await upstream_closed(guard_fake), "the upstream kept generating after the block"
    finding = "CANARY" if with_canary else ("PROMPT_OVERLAP" if name == "letter-spaced" else "PROMPT_TRANSFORMED")
    await assert_ledger_withheld(guard_env, caller, response.headers["x-request-id"], sent, finding)


async def test_answer_with_unrelated_encoded_data_is_released(guard_env: GuardEnv, guard_fake: GuardFake) -> None:
    caller = await guard_env.tenant()
    text = answer(b64("Breakfast is served from seven to half past ten on the terrace, weather permitting."))
    guard_fake.answer(UPSTREAM, text)
    response = await guard_env.chat(caller, {"model": f"prompt:{PROMPT}", "messages": HI})
    assert response.json()["choices"][0]["message"]["content"] == text
    body = {"model": f"prompt:{PROMPT}", "messages": HI, "stream": True}
    response, events = await guard_env.stream(caller, "/v1/chat/completions", body)
    texts, finishes = stream_text(events)
    assert "".join(texts) == text and finishes == ["stop"]
    row = await guard_env.interaction(caller, response.headers["x-request-id"])
    assert row["flagged"] is False and row["response_text"] == text
