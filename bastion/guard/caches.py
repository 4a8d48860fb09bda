"""Per-process caches that keep the guard cheap on the request path.

``FingerprintCache`` keeps prompt fingerprints (a vault prompt is sent again and again),
``PlantedOutputGuard`` is an output guard over such a ready fingerprint, and ``MemoInputGuard``
remembers its per-text scans so a conversation's history is scanned once.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from bastion.config.guard_policy import GuardPolicy
from bastion.guard.engine import InputGuard, OutputGuard
from bastion.guard.leak import PromptFingerprint
from bastion.guard.normalize import alnum_fold


class FingerprintCache:
    """Prompt fingerprints (the prompt's folded words and shingles) by prompt text, for a while.

    Building one costs about 150 us for a 2 KB prompt, and the same vault prompt is sent again and
    again. Entries live at most ``ttl_s`` (the vault's own cache time for decrypted prompts, so the
    guard keeps prompt-derived data no longer than the vault keeps the prompt) and at most
    ``max_entries`` of them. The canary differs per request and is added to a copy.
    """

    def __init__(self, ttl_s: float, max_entries: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, int], tuple[float, PromptFingerprint]] = {}

    def get(self, system_prompt: str | None, canary: str | None, ngram: int) -> PromptFingerprint:
        if not system_prompt:
            return PromptFingerprint(None, canary, ngram=ngram)
        key = (system_prompt, ngram)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            base = entry[1]
        else:
            base = PromptFingerprint(system_prompt, None, ngram=ngram)
            if self.ttl_s > 0:
                self._store(key, base, now)
        if not canary:
            return base
        planted = copy.copy(base)  # shares the frozen shingles; only the canary fields differ
        planted.canary = canary
        planted.canary_folded = alnum_fold(canary)
        return planted

    def _store(self, key: tuple[str, int], fingerprint: PromptFingerprint, now: float) -> None:
        entries = self._entries
        if key not in entries and len(entries) >= self.max_entries:
            for stale in [k for k, (expires, _) in entries.items() if expires <= now]:
                del entries[stale]
            while len(entries) >= self.max_entries:
                del entries[next(iter(entries))]  # the oldest insertion
        entries.pop(key, None)
        entries[key] = (now + self.ttl_s, fingerprint)

    def clear(self) -> None:
        self._entries.clear()


class PlantedOutputGuard(OutputGuard):
    """An ``OutputGuard`` over a ready fingerprint (from ``FingerprintCache``) instead of building
    one from the prompt text on every request. ``for_request`` copies a per-policy template, so a
    request pays for neither the fingerprint nor the detectors' set-up."""

    def __init__(self, policy: GuardPolicy, fingerprint: PromptFingerprint | None = None) -> None:
        super().__init__(policy)  # no prompt: builds only the cheap parts
        if fingerprint is not None:
            self._use(fingerprint)

    def _use(self, fingerprint: PromptFingerprint) -> None:
        self.fingerprint = fingerprint
        # Same rule as OutputGuard.__init__: the leak scanner runs when on and there is something to find.
        self._leak_on = self.policy.leak != "off" and fingerprint.active

    @classmethod
    def for_request(cls, policy: GuardPolicy, fingerprint: PromptFingerprint) -> PlantedOutputGuard:
        guard = copy.copy(_output_template(policy))
        guard._use(fingerprint)
        return guard


@lru_cache(maxsize=256)
def _output_template(policy: GuardPolicy) -> PlantedOutputGuard:
    return PlantedOutputGuard(policy)


class MemoInputGuard(InputGuard):
    """``InputGuard`` that remembers its per-text scans, so a conversation's history is scanned once.

    Clients (and agent sessions) send the whole conversation on every turn; its earlier user and
    tool messages were scanned on the turns before and scan the same way again (a scan depends on
    the text and the policy only). Entries are keyed by a 128-bit digest, never by the text, and
    bounded in count and text size; a scan result holds finding types and offsets and the redacted
    text. Per policy (``for_policy``), like the guard's own cache.
    """

    def __init__(self, policy: GuardPolicy | None = None, *, max_entries: int = 512) -> None:
        super().__init__(policy)
        self.max_entries = max_entries
        self._memo: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()  # large scans run in guard worker threads (bastion.guard.offload)

    @classmethod
    def for_policy(cls, policy: GuardPolicy) -> MemoInputGuard:
        return _memo_input_guard(policy)

    def _scan(self, text: str) -> Any:
        if len(text) > _MEMO_MAX_CHARS:
            return super()._scan(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        memo = self._memo
        with self._lock:
            scan = memo.get(key)
            if scan is not None:
                memo.move_to_end(key)
                return scan
        scan = super()._scan(text)  # its verdicts are never mutated afterwards: safe to share
        with self._lock:
            memo[key] = scan
            if len(memo) > self.max_entries:
                memo.popitem(last=False)
        return scan


#: Longer texts are scanned every time (a pasted document rarely comes back, and would crowd the memo).
_MEMO_MAX_CHARS = 8192


@lru_cache(maxsize=256)
def _memo_input_guard(policy: GuardPolicy) -> MemoInputGuard:
    return MemoInputGuard(policy)
