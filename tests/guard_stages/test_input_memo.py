"""The input stage's memo: a conversation's history is scanned once, with identical results."""

from __future__ import annotations

from bastion.gateway.stages.guard import MemoInputGuard
from bastion.guard import GuardPolicy, InputGuard


def test_history_is_scanned_once_and_scans_the_same() -> None:
    guard = MemoInputGuard(GuardPolicy(), max_entries=3)
    plain = InputGuard(GuardPolicy())
    calls: list[str] = []
    original = InputGuard._scan

    def counting(self: InputGuard, text: str) -> object:
        calls.append(text)
        return original(self, text)

    InputGuard._scan = counting  # type: ignore[method-assign]
    try:
        turn1 = [{"role": "user", "content": "My email is jane.doe@gmail.com, can you help?"}]
        turn2 = [*turn1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Thanks!"}]
        first = guard.scan_messages(turn1)
        second = guard.scan_messages(turn2)
    finally:
        InputGuard._scan = original  # type: ignore[method-assign]
    assert calls == [turn1[0]["content"], "Thanks!"]  # the first message was not scanned again
    expected = plain.scan_messages(turn2)
    assert second.messages == expected.messages
    assert second.messages[0]["content"] == "My email is [EMAIL_ADDRESS], can you help?"
    assert second.to_ledger() == expected.to_ledger() and first.to_ledger() == plain.scan_messages(turn1).to_ledger()


def test_memo_is_bounded_and_skips_long_texts() -> None:
    guard = MemoInputGuard(GuardPolicy(), max_entries=2)
    for text in ("one message", "two messages", "three messages", "x" * 10_000):
        guard.scan_text(text)
    assert len(guard._memo) == 2  # a private field: the bound under test
    assert MemoInputGuard.for_policy(GuardPolicy()) is MemoInputGuard.for_policy(GuardPolicy())
