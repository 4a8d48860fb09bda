"""Disguised copies of the system prompt in a stream: the stream guard stops them whatever the split,
before a leak's worth of the copy went out; benign streams are released unchanged."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.guard import GuardPolicy, OutputGuard, StreamingOutputGuard, plant_canary
from tests.guard.disguises import BENIGN, CANARY_DISGUISES, COPIES, VAULT_PROMPT, answer
from tests.guard.support import verdict_of

CANARY = "bst-5c07e91a3d84f26b"
GUARD = OutputGuard(GuardPolicy(), system_prompt=VAULT_PROMPT, canary=CANARY)
#: Without PII/secret redaction nothing holds a long token back: encoded runs go out batch by batch.
NO_REDACTION = OutputGuard(GuardPolicy(pii="off", secrets="off"), system_prompt=VAULT_PROMPT, canary=CANARY)


def stream(guard: OutputGuard, text: str, cuts: list[int]) -> tuple[StreamingOutputGuard, str]:
    streaming = StreamingOutputGuard(guard)
    points = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    released = "".join(streaming.feed(text[a:b]) for a, b in itertools.pairwise(points))
    return streaming, released + streaming.finish()


def every(step: int, text: str) -> list[int]:
    return list(range(step, len(text), step))


def assert_withheld(guard: OutputGuard, text: str, cuts: list[int]) -> str:
    streaming, released = stream(guard, text, cuts)
    assert streaming.blocked
    result = streaming.result
    leak = result.verdict("leak")
    assert result.action == "block" and leak is not None and leak.flagged and leak.score >= 0.2
    # What went out before the block is not a leak by itself (under the threshold, like a verbatim copy).
    assert not guard.scan_text(released).flagged, released
    return released


@pytest.mark.parametrize("step", [7, 20, 100_000])
@pytest.mark.parametrize("name", sorted(COPIES))
def test_disguised_copy_is_withheld_from_a_stream(name: str, step: int) -> None:
    text = answer(COPIES[name](VAULT_PROMPT))
    for guard in (GUARD, NO_REDACTION):
        released = assert_withheld(guard, text, every(step, text))
        assert len(released) < len(text) // 2


@pytest.mark.parametrize("name", ["rot13", "base64", "hex", "letter-spaced", "reversed"])
def test_disguised_copy_with_the_canary_is_withheld_from_a_stream(name: str) -> None:
    text = answer(COPIES[name](plant_canary(VAULT_PROMPT, CANARY)))
    streaming, released = stream(GUARD, text, every(20, text))
    assert streaming.blocked and verdict_of(streaming.result, "leak").findings
    assert not GUARD.scan_text(released).flagged


@pytest.mark.parametrize("name", sorted(CANARY_DISGUISES))
def test_disguised_canary_is_never_released(name: str) -> None:
    disguised = CANARY_DISGUISES[name](CANARY)
    text = f"Of course. My reference marker is {disguised} and that is all there is to it, really."
    for step in (3, 16, 64):
        streaming, released = stream(GUARD, text, every(step, text))
        assert streaming.blocked and disguised not in released
        assert [f.type for f in verdict_of(streaming.result, "leak").findings] == ["CANARY"]


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(COPIES)), data=st.data())
def test_disguised_copy_is_withheld_whatever_the_split(name: str, data: st.DataObject) -> None:
    text = answer(COPIES[name](VAULT_PROMPT))
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(text) - 1), max_size=120))
    assert_withheld(NO_REDACTION, text, cuts)


@pytest.mark.parametrize("step", [5, 20, 64, 100_000])
@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_stream_is_released_unchanged(name: str, step: int) -> None:
    text = BENIGN[name]
    streaming, released = stream(GUARD, text, every(step, text))
    assert not streaming.blocked and released == text
    leak = streaming.result.verdict("leak")
    assert leak is not None and not leak.flagged and leak.score < 0.2
