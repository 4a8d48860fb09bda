"""What the two guard stages share: the per-request guard state the ledger records, the policy
resolver, the output guard built from a cached prompt fingerprint, and the verdict metrics.

``GuardInStage`` (guard_in.py) scans the request after auth and the prompt stage and before limits
and routing; ``GuardOutStage`` (guard_out.py) scans complete answers and wraps streams. They meet in
``ctx.annotations["guard"]``, a ``GuardState``: the resolved policy plus both sides' results. The
ledger reads that key (``to_ledger()``: types, counts, scores, never matched text) and flags the
interaction when any scanner flagged. See docs/GUARD.md, "On the request path".
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bastion.errors import InvalidRequest
from bastion.gateway.context import RequestContext
from bastion.guard import (
    BLOCKED_MESSAGE,
    GuardPolicy,
    GuardResult,
    InputGuard,
    OutputGuard,
    StreamingOutputGuard,
    Verdict,
)
from bastion.guard.leak import PromptFingerprint
from bastion.guard.models import ACTION_RANK, Action
from bastion.guard.normalize import alnum_fold
from bastion.guard.policy_resolution import PolicyResolver
from bastion.observability.metrics import GUARD_VERDICTS

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

#: Key of the shared guard services in ``Gateway.services``.
SERVICE = "guard"
#: What replaces an answer the output guard blocked (non-streamed: the whole content; streamed: the
#: last delta). Like ``BLOCKED_MESSAGE`` it says nothing about the prompt, the output or the rule.
WITHHELD_MESSAGE = "The response was withheld by policy."
#: OpenAI's finish reason for filtered output; the Anthropic renderers turn it into ``refusal``.
CONTENT_FILTER = "content_filter"


class ContentBlocked(InvalidRequest):
    """The input guard blocked the request: 400, ``content_blocked``, a message that reveals nothing."""

    code = "content_blocked"

    def __init__(self) -> None:
        super().__init__(BLOCKED_MESSAGE)


@dataclass(slots=True)
class GuardState:
    """``ctx.annotations["guard"]``: the policy in force and what each side found.

    The ledger calls ``to_ledger()`` when it records the interaction, after both stages ran."""

    policy: GuardPolicy
    input: GuardResult | None = None
    output: GuardResult | None = None

    @property
    def flagged(self) -> bool:
        return any(result is not None and result.flagged for result in (self.input, self.output))

    def to_ledger(self) -> dict[str, Any]:
        action: Action = "allow"
        summary: dict[str, Any] = {}
        for side, result in (("input", self.input), ("output", self.output)):
            if result is None:
                continue
            if ACTION_RANK[result.action] > ACTION_RANK[action]:
                action = result.action
            summary[side] = result.to_ledger()
        return {"action": action, "flagged": self.flagged, **summary}


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


class RunHoldingStreamGuard(StreamingOutputGuard):
    """``StreamingOutputGuard`` that also holds back a run of prompt words still in progress.

    The base guard holds the last ``n - 1`` words, so a contiguous verbatim leak releases its first
    words until the overlap reaches the threshold: for a long prompt that is many words, each a
    verbatim span. Here, while the latest words are all prompt words (a run that may be a leak in
    progress), the whole run is held, up to the length at which a contiguous copy of the prompt
    reaches the threshold. A leak is then blocked before any of it went out; an answer that merely
    shares a phrase with the prompt is released as soon as the run breaks.
    """

    def _shingle_hold(self, pending: str) -> int:
        n = self._ngram
        run = min(self._vocabulary_run, self._needed + n - 1)
        if run < n:
            return super()._shingle_hold(pending)
        return self._last_words_start(pending, run + (1 if self._carry else 0))


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
        self._lock = threading.Lock()  # large scans run in guard worker threads

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


class GuardServices:
    """Built once per gateway and shared by both stages."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings.guard
        self.enabled = settings.enabled
        self.canary_for_client_prompts = settings.canary_for_client_prompts
        self.resolver = PolicyResolver(GuardPolicy.model_validate(settings.policy))
        self.fingerprints = FingerprintCache(gateway.settings.vault.cache_ttl_s)

    def state(self, ctx: RequestContext) -> GuardState:
        """The request's guard state, resolving the policy if the input stage did not (custom pipelines)."""
        state = ctx.annotations.get("guard")
        if isinstance(state, GuardState):
            return state
        state = GuardState(self.resolver.resolve(ctx.principal, ctx.annotations.get("prompt_guard")))
        ctx.annotations["guard"] = state
        return state

    def output_guard(self, policy: GuardPolicy, ctx: RequestContext) -> OutputGuard | None:
        """The output guard for this request, or None when no output scanner is on."""
        if policy.leak == "off" and policy.effective_output_pii == "off" and policy.effective_output_secrets == "off":
            return None
        secret = ctx.annotations.get("prompt_secret") or {}
        fingerprint = self.fingerprints.get(secret.get("system_prompt"), secret.get("canary"), policy.leak_ngram)
        return PlantedOutputGuard.for_request(policy, fingerprint)


def guard_services(gateway: Gateway) -> GuardServices:
    services = gateway.services.get(SERVICE)
    if services is None:
        services = GuardServices(gateway)
        gateway.services[SERVICE] = services
    return services  # type: ignore[no-any-return]


def combine(results: list[GuardResult]) -> GuardResult | None:
    """One result from several scans of one side (choices, tool-call arguments): per scanner the
    highest score, any flag, the most severe action and all findings."""
    if not results:
        return None
    if len(results) == 1:
        return results[0]
    merged: dict[str, Verdict] = {}
    action: Action = "allow"
    elapsed = 0.0
    for result in results:
        elapsed += result.elapsed_us
        if ACTION_RANK[result.action] > ACTION_RANK[action]:
            action = result.action
        for verdict in result.verdicts:
            current = merged.get(verdict.scanner)
            if current is None:
                merged[verdict.scanner] = Verdict(
                    verdict.scanner, verdict.score, verdict.flagged, list(verdict.findings), verdict.action
                )
                continue
            current.score = max(current.score, verdict.score)
            current.flagged = current.flagged or verdict.flagged
            current.findings.extend(verdict.findings)
            if ACTION_RANK[verdict.action] > ACTION_RANK[current.action]:
                current.action = verdict.action
    return GuardResult(action=action, text="", verdicts=list(merged.values()), elapsed_us=elapsed)


_COUNTERS: dict[tuple[str, str, str], Any] = {}


def count_verdicts(direction: str, result: GuardResult | None) -> None:
    """``bastion_guard_verdicts{direction, scanner, action}``: one per scanner that ran."""
    if result is None:
        return
    for verdict in result.verdicts:
        key = (direction, verdict.scanner, verdict.action)
        counter = _COUNTERS.get(key)
        if counter is None:  # label lookups cost more than the increment: keep the children
            counter = _COUNTERS[key] = GUARD_VERDICTS.labels(*key)
        counter.inc()
