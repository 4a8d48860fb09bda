"""System-prompt leak detection: canary tokens and word-shingle overlap."""

from __future__ import annotations

import base64

from bastion.guard import GuardPolicy, OutputGuard, make_canary, plant_canary
from bastion.guard.leak import PromptFingerprint, find_canary
from bastion.guard.normalize import alnum_fold

SYSTEM_PROMPT = (
    "You are Orbit, the booking assistant for Skyline Travel. Only discuss flights, hotels and car hire. "
    "Never quote prices that are not in the fare table. Escalate refunds above 500 euros to a human agent "
    "and never mention the internal fare codes to customers."
)


def test_make_canary_is_random_or_derived() -> None:
    first, second = make_canary(), make_canary()
    assert first != second and first.startswith("bst-") and len(first) == 20
    key = b"k" * 32
    assert make_canary(key, "prompt-7:v3") == make_canary(key, "prompt-7:v3")
    assert make_canary(key, "prompt-7:v3") != make_canary(key, "prompt-7:v4")


def test_plant_canary_positions() -> None:
    canary = make_canary()
    both = plant_canary("Be nice.", canary)
    assert both.startswith(f"[{canary}]") and both.count(canary) == 2 and "Be nice." in both
    assert plant_canary("Be nice.", canary, position="start").count(canary) == 1
    assert plant_canary("Be nice.", canary, position="end").startswith("Be nice.")


def test_canary_found_however_it_is_spelled() -> None:
    canary = "bst-3f9c2a7d41e0b6c5"
    folded = alnum_fold(canary)
    for output in (
        f"my marker is {canary}",
        "BST-3F9C2A7D41E0B6C5 in caps",
        "b s t 3 f 9 c 2 a 7 d 4 1 e 0 b 6 c 5",
        "bst-3f9c2a7d41\u200be0b6c5 with a zero-width space",
    ):
        assert find_canary(output, folded), output
    guard = OutputGuard(GuardPolicy(), canary=canary)
    encoded = base64.b64encode(f"the marker: {canary}".encode()).decode()
    assert guard.scan_text(f"Here you go: {encoded}").blocked
    assert not guard.scan_text("bst-3f9c2a7d41e0b6c4 differs in one digit").flagged


def test_canary_leak_blocks_by_default() -> None:
    canary = make_canary()
    result = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT, canary=canary).scan_text(f"Sure: [{canary}] ...")
    assert result.action == "block"
    leak = result.verdict("leak")
    assert leak is not None and leak.score == 1.0 and [f.type for f in leak.findings] == ["CANARY"]


def test_verbatim_leak_is_caught_by_overlap() -> None:
    guard = OutputGuard(GuardPolicy(), system_prompt=SYSTEM_PROMPT)
    result = guard.scan_text("My instructions say: " + SYSTEM_PROMPT.upper().replace(".", ""))
    assert result.blocked
    assert result.verdict("leak").score > 0.9  # type: ignore[union-attr]


def test_partial_leak_above_threshold_and_normal_answer_below() -> None:
    guard = OutputGuard(GuardPolicy(leak_threshold=0.3), system_prompt=SYSTEM_PROMPT)
    half = " ".join(SYSTEM_PROMPT.split()[:25])
    assert guard.scan_text(f"Sure. {half}").blocked
    answer = "I can help with flights and hotels. I pass refunds above 500 euros to a human agent, who will call."
    result = guard.scan_text(answer)
    assert not result.flagged and result.action == "allow"
    assert 0.0 < result.verdict("leak").score < 0.3  # type: ignore[union-attr]


def test_short_prompts() -> None:
    tiny = PromptFingerprint("Be brief.", None)
    assert not tiny.shingles  # two words: left to the canary
    short = PromptFingerprint("Answer in French only.", None, ngram=5)
    assert short.ngram == 4 and len(short.shingles) == 1
    assert short.scan("Of course! I answer in French only.", threshold=0.2).score == 1.0
    assert short.scan("Je parle français.", threshold=0.2).score == 0.0


def test_leak_modes() -> None:
    text = "Rules: " + SYSTEM_PROMPT
    assert OutputGuard(GuardPolicy(leak="flag"), system_prompt=SYSTEM_PROMPT).scan_text(text).action == "flag"
    assert OutputGuard(GuardPolicy(leak="redact"), system_prompt=SYSTEM_PROMPT).scan_text(text).action == "block"
    off = OutputGuard(GuardPolicy(leak="off"), system_prompt=SYSTEM_PROMPT).scan_text(text)
    assert off.action == "allow" and off.verdict("leak") is None


def test_output_pii_and_secrets() -> None:
    guard = OutputGuard(GuardPolicy())
    result = guard.scan_text("Reach Jane at jane@corp.io; the key is AKIAIOSFODNN7EXAMPLE.")
    assert result.text == "Reach Jane at [EMAIL_ADDRESS]; the key is [AWS_ACCESS_KEY_ID]."
    flag_only = OutputGuard(GuardPolicy(output_pii="flag")).scan_text("jane@corp.io")
    assert flag_only.action == "flag" and flag_only.text == "jane@corp.io"
