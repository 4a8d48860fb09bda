"""Streaming output guard: leaks never released whatever the split; redaction matches the batch guard."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.guard import GuardPolicy, OutputGuard, StreamingOutputGuard
from bastion.guard.leak import find_canary
from bastion.guard.normalize import alnum_fold
from tests.guard.support import verdict_of

SYSTEM_PROMPT = (
    "You are Quill, an editing assistant for the Harbor Gazette newsroom. Keep every headline under twelve "
    "words, prefer active voice, and never publish the name of a source marked confidential. The embargo list "
    "for this week includes the harbour expansion vote and the mayor's budget speech."
)
CANARY = "bst-8e1f0c3b9a27d654"
CANARY_FOLDED = alnum_fold(CANARY)


def stream(guard: OutputGuard, text: str, cuts: list[int]) -> tuple[StreamingOutputGuard, str]:
    streaming = StreamingOutputGuard(guard)
    points = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    released = "".join(streaming.feed(text[a:b]) for a, b in itertools.pairwise(points))
    return streaming, released + streaming.finish()


def cut_lists(max_len: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=1, max_value=max_len), max_size=60)


LEAK_GUARD = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT, canary=CANARY)
CANARY_OUTPUT = "Of course, happy to share. My reference marker is " + CANARY + " and then some more words follow."
PROMPT_OUTPUT = "Certainly! Here is everything I was told: " + SYSTEM_PROMPT + " That is all of it."


@settings(max_examples=150, deadline=None)
@given(cuts=cut_lists(len(CANARY_OUTPUT)))
def test_canary_is_never_released(cuts: list[int]) -> None:
    streaming, released = stream(LEAK_GUARD, CANARY_OUTPUT, cuts)
    assert streaming.blocked
    assert CANARY_FOLDED not in alnum_fold(released)
    assert not find_canary(released, CANARY_FOLDED)
    # Not even a long prefix of it.
    assert CANARY_FOLDED[:6] not in alnum_fold(released)
    assert streaming.result.action == "block"


@settings(max_examples=150, deadline=None)
@given(cuts=cut_lists(len(PROMPT_OUTPUT)))
def test_leaked_prompt_is_stopped_before_the_threshold(cuts: list[int]) -> None:
    streaming, released = stream(OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT), PROMPT_OUTPUT, cuts)
    assert streaming.blocked
    check = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT).scan_text(released)
    leak = check.verdict("leak")
    assert leak is not None and not leak.flagged, released
    assert len(released) < len(PROMPT_OUTPUT) // 2


@settings(max_examples=100, deadline=None)
@given(cuts=cut_lists(200))
def test_benign_stream_is_released_unchanged(cuts: list[int]) -> None:
    text = (
        "Here is a tighter headline: 'Council backs harbour plan after long debate'. I kept it under twelve "
        "words and used the active voice. Want two more options?"
    )
    streaming, released = stream(LEAK_GUARD, text, cuts)
    assert not streaming.blocked
    assert released == text


@settings(max_examples=100, deadline=None)
@given(cuts=cut_lists(220))
def test_streaming_redaction_matches_batch(cuts: list[int]) -> None:
    text = (
        "Sure! Write to jane.doe@harbor-gazette.com or call +44 20 7946 0958. The card on file is "
        "4111 1111 1111 1111 and the IBAN DE89 3704 0044 0532 0130 00. Deploy key: AKIAIOSFODNN7EXAMPLE. Bye!"
    )
    guard = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT, canary=CANARY)
    streaming, released = stream(guard, text, cuts)
    assert released == guard.scan_text(text).text
    for raw in ("jane.doe", "7946", "4111", "DE89", "AKIA"):
        assert raw not in released
    result = streaming.result
    assert verdict_of(result, "pii").flagged and verdict_of(result, "secrets").flagged


def test_private_key_block_is_held_until_complete() -> None:
    guard = OutputGuard(GuardPolicy())
    streaming = StreamingOutputGuard(guard)
    out = streaming.feed("Here it is:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1L")
    out += streaming.feed("fVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n")
    assert "MIIE" not in out
    out += streaming.feed("-----END RSA PRIVATE KEY-----\nDone.")
    out += streaming.finish()
    assert out == "Here it is:\n[PRIVATE_KEY]\nDone."


def test_blocked_stream_releases_nothing_more() -> None:
    streaming = StreamingOutputGuard(LEAK_GUARD, min_batch_chars=32)
    streaming.feed("The marker is " + CANARY + " ok")
    assert streaming.blocked
    assert streaming.feed(" more text") == ""
    assert streaming.finish() == ""
    assert streaming.finish() == ""


def test_flag_mode_streams_without_holding_back_for_leaks() -> None:
    guard = OutputGuard(GuardPolicy(leak="flag", pii="off", secrets="off"), system_prompt=SYSTEM_PROMPT)
    streaming, released = stream(guard, PROMPT_OUTPUT, [10, 50, 90])
    assert not streaming.blocked and released == PROMPT_OUTPUT
    result = streaming.result
    assert result.action == "flag" and verdict_of(result, "leak").flagged


@settings(max_examples=60, deadline=None)
@given(cuts=cut_lists(160))
def test_base64_encoded_canary_is_never_released(cuts: list[int]) -> None:
    import base64

    encoded = base64.b64encode(f"marker {CANARY} end".encode()).decode()
    text = f"Here is the data you asked for: {encoded} and that is all, thank you."
    streaming, released = stream(LEAK_GUARD, text, cuts)
    assert streaming.blocked
    assert encoded not in released


def test_block_mode_for_pii_stops_the_stream() -> None:
    guard = OutputGuard(GuardPolicy(output_pii="block"))
    streaming, released = stream(guard, "Sure, her card is 4111 1111 1111 1111 and that's it.", [5, 20, 30, 41])
    assert streaming.blocked and "4111" not in released
    assert streaming.result.action == "block"
    assert guard.scan_text("card 4111 1111 1111 1111").blocked


@settings(max_examples=60, deadline=None)
@given(cuts=cut_lists(90))
def test_secret_value_without_digits_split_from_its_key(cuts: list[int]) -> None:
    text = 'config: api_key = "AbCdEfGhIjKlMnOpQrStUvWxYz" and the rest of the answer follows here.'
    guard = OutputGuard(GuardPolicy())
    _, released = stream(guard, text, cuts)
    assert "AbCdEfGh" not in released
    assert released == guard.scan_text(text).text
