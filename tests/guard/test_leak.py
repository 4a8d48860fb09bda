"""System-prompt leak detection: canary tokens, word-shingle overlap, and disguised copies of both."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pytest

from bastion.guard import GuardPolicy, GuardResult, OutputGuard, make_canary, plant_canary
from bastion.guard.leak import CANARY_PREFIX, PromptFingerprint, find_canary
from bastion.guard.leak_copies import traceable_canary
from bastion.guard.normalize import alnum_fold
from tests.guard.disguises import BENIGN, CANARY_DISGUISES, COPIES, VAULT_PROMPT, answer, b64, rot13
from tests.guard.support import verdict_of

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


def test_every_canary_has_the_digits_its_disguised_copies_are_traced_by(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token with fewer than four digits is found verbatim but not through rot13 or a reversal: a
    random one is drawn again, a derived one takes the digest's next characters (and stays stable)."""
    draws = iter(["dcac3bb0beecbaf2", "0123456789abcdef"])
    monkeypatch.setattr(secrets, "token_hex", lambda _size: next(draws))
    assert make_canary() == "bst-0123456789abcdef"
    key = b"test-key"
    head = hmac.new(key, b"prompt-3501", hashlib.sha256).hexdigest()[:16]
    assert not traceable_canary(CANARY_PREFIX + head)  # this context's digest starts digit-poor
    derived = make_canary(key, "prompt-3501")
    assert derived != CANARY_PREFIX + head and traceable_canary(derived) and make_canary(key, "prompt-3501") == derived
    guard = OutputGuard(GuardPolicy(), system_prompt=VAULT_PROMPT, canary=derived)
    assert leak_types(guard.scan_text(answer(rot13(plant_canary(VAULT_PROMPT, derived))))) == ["CANARY"]
    # Any other context keeps the digest's first 16 characters, as before.
    usual = hmac.new(key, b"prompt-7:v3", hashlib.sha256).hexdigest()[:16]
    assert make_canary(key, "prompt-7:v3") == CANARY_PREFIX + usual


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
    assert verdict_of(result, "leak").score > 0.9


def test_partial_leak_above_threshold_and_normal_answer_below() -> None:
    guard = OutputGuard(GuardPolicy(leak_threshold=0.3), system_prompt=SYSTEM_PROMPT)
    half = " ".join(SYSTEM_PROMPT.split()[:25])
    assert guard.scan_text(f"Sure. {half}").blocked
    answer = "I can help with flights and hotels. I pass refunds above 500 euros to a human agent, who will call."
    result = guard.scan_text(answer)
    assert not result.flagged and result.action == "allow"
    assert 0.0 < verdict_of(result, "leak").score < 0.3


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


# --- disguised copies (``leak_copies``) ----------------------------------------------------------

VAULT_CANARY = "bst-5c07e91a3d84f26b"
VAULT_GUARD = OutputGuard(GuardPolicy(), system_prompt=VAULT_PROMPT, canary=VAULT_CANARY)


def leak_types(result: GuardResult) -> list[str]:
    leak = result.verdict("leak")
    assert leak is not None
    return [finding.type for finding in leak.findings]


@pytest.mark.parametrize("name", sorted(COPIES))
def test_disguised_copy_without_the_canary_is_withheld(name: str) -> None:
    result = VAULT_GUARD.scan_text(answer(COPIES[name](VAULT_PROMPT)))
    assert result.blocked, name
    assert leak_types(result) in (["PROMPT_TRANSFORMED"], ["PROMPT_OVERLAP"]), leak_types(result)
    assert verdict_of(result, "leak").score >= 0.9


@pytest.mark.parametrize("name", ["rot13", "base64", "hex", "letter-spaced", "reversed"])
def test_disguised_copy_with_the_planted_canary_is_withheld(name: str) -> None:
    planted = plant_canary(VAULT_PROMPT, VAULT_CANARY)
    result = VAULT_GUARD.scan_text(answer(COPIES[name](planted)))
    assert result.blocked and "CANARY" in leak_types(result)


def test_rot13_copy_with_a_fresh_planted_canary_is_withheld() -> None:
    canary = make_canary()  # what the prompt stage plants in a vault prompt, fresh per request
    guard = OutputGuard(GuardPolicy(), system_prompt=VAULT_PROMPT, canary=canary)
    result = guard.scan_text(answer(rot13(plant_canary(VAULT_PROMPT, canary))))
    assert result.blocked and leak_types(result) == ["CANARY"]


@pytest.mark.parametrize("name", sorted(CANARY_DISGUISES))
def test_disguised_canary_alone_is_found(name: str) -> None:
    guard = OutputGuard(GuardPolicy(), canary=VAULT_CANARY)  # no prompt: the canary is all there is
    result = guard.scan_text(f"My reference marker is {CANARY_DISGUISES[name](VAULT_CANARY)}, nothing else.")
    assert result.blocked and leak_types(result) == ["CANARY"]
    near_miss = VAULT_CANARY[:-1] + "c"
    assert not guard.scan_text(f"Marker {CANARY_DISGUISES[name](near_miss)}.").flagged


@pytest.mark.parametrize("start", range(0, 9))
def test_a_copy_of_the_middle_is_found_at_every_alignment(start: int) -> None:
    """Base64 of a copy that starts anywhere (three alignments of the encoding, and every shift of
    the letters against the sampling step) and covers a third of the prompt."""
    third = len(VAULT_PROMPT) // 3
    middle = VAULT_PROMPT[third + start : 2 * third + start + 10]
    for encode in (b64, rot13, COPIES["reversed"]):
        assert VAULT_GUARD.scan_text(answer(encode(middle))).blocked, (start, encode)


def test_a_disguised_copy_below_the_threshold_passes() -> None:
    """One sentence in base64 is about a tenth of the prompt: under ``leak_threshold``, like a verbatim
    sentence (documented in docs/GUARD.md)."""
    sentence = "Help customers read their bills, move their contract to a new address and report outages."
    for copy in (sentence, b64(sentence), rot13(sentence)):
        result = VAULT_GUARD.scan_text(answer(copy))
        assert not result.flagged, copy
    assert verdict_of(VAULT_GUARD.scan_text(answer(b64(sentence))), "leak").score > 0


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_answers_are_released(name: str) -> None:
    planted = OutputGuard(GuardPolicy(), system_prompt=plant_canary(VAULT_PROMPT, VAULT_CANARY), canary=VAULT_CANARY)
    for guard in (VAULT_GUARD, planted):
        result = guard.scan_text(BENIGN[name])
        leak = result.verdict("leak")
        assert leak is not None and not leak.flagged and leak.score < 0.2, (name, leak)
        assert result.action == "allow" and result.text == BENIGN[name]


def test_short_prompts_are_left_to_the_canary() -> None:
    """Too few letters for a copy to be told from chance: a copy of such a prompt is not a leak by
    itself (the same rule as the word overlap), its canary still is."""
    guard = OutputGuard(GuardPolicy(), system_prompt="Answer in French only.", canary=VAULT_CANARY)
    assert guard.fingerprint.copies is None
    assert not guard.scan_text(b64("Answer in French only.")).flagged
    assert guard.scan_text(rot13(plant_canary("Answer in French only.", VAULT_CANARY))).blocked
