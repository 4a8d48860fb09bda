"""The input stage's memo: a conversation's history is scanned once, with identical results."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.settings import GuardSettings
from bastion.guard import GuardPolicy, InputGuard
from bastion.guard.caches import MemoInputGuard, _memo_input_guard
from bastion.guard.service import GuardService


def test_history_is_scanned_once_and_scans_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = MemoInputGuard(GuardPolicy(), max_entries=3)
    plain = InputGuard(GuardPolicy())
    calls: list[str] = []
    original = InputGuard._scan

    def counting(self: InputGuard, text: str) -> object:
        calls.append(text)
        return original(self, text)

    with monkeypatch.context() as patch:
        patch.setattr(InputGuard, "_scan", counting)
        turn1 = [{"role": "user", "content": "My email is jane.doe@gmail.com, can you help?"}]
        turn2 = [*turn1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Thanks!"}]
        first = guard.scan_messages(turn1)
        second = guard.scan_messages(turn2)
    assert calls == [turn1[0]["content"], "Thanks!"]  # the first message was not scanned again
    expected = plain.scan_messages(turn2)
    assert second.messages == expected.messages
    assert second.messages is not None
    assert second.messages[0]["content"] == "My email is [EMAIL_ADDRESS], can you help?"
    assert second.to_ledger() == expected.to_ledger() and first.to_ledger() == plain.scan_messages(turn1).to_ledger()


def test_memo_is_bounded_and_skips_long_texts() -> None:
    guard = MemoInputGuard(GuardPolicy(), max_entries=2)
    for text in ("one message", "two messages", "three messages", "x" * 10_000):
        guard.scan_text(text)
    assert len(guard._memo) == 2  # a private field: the bound under test
    assert MemoInputGuard.for_policy(GuardPolicy()) is MemoInputGuard.for_policy(GuardPolicy())


async def test_start_builds_the_default_guard_before_the_first_request() -> None:
    """The detectors take a while to build; ``start`` builds them beside start-up, not in a request."""

    def service(**guard: Any) -> GuardService:
        return GuardService(GuardSettings.model_validate(guard), prompt_cache_ttl_s=300.0)

    _memo_input_guard.cache_clear()
    guard = service(policy={"injection": "block"})
    await guard.start()
    await guard.stop()  # waits for the build
    assert _memo_input_guard.cache_info().currsize == 1
    _memo_input_guard.cache_clear()
    off = service(enabled=False)
    await off.start()
    await off.stop()
    assert _memo_input_guard.cache_info().currsize == 0, "a disabled guard builds nothing"
