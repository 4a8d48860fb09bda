"""Streaming output guard: release model text as it arrives, but never a leak or an unredacted secret.

``feed(delta)`` returns the text that is safe to send now; the rest is held back until it is known
to be safe. What is held back, and why:

* the stream's tail that could be the beginning of the canary (a partial match of its letters);
* the last ``n - 1`` words plus the word in progress, because a word arriving later can complete a
  prompt shingle that pushes the overlap over the threshold: the leak is then blocked before any of
  that shingle's words went out;
* when PII or secrets are redacted: the token in progress (an e-mail, a key), a trailing run of
  digit groups (a card or phone number still being written) and an unterminated private-key block
  (``stream_holds``).

Everything before those points is scanned (with a little already-released text as left context)
and released with PII/secrets replaced by placeholders. Once a leak is detected nothing more is
released; ``finish()`` runs the final checks and flushes the remainder.

Released text never contains the canary, and never text whose overlap with the prompt reaches the
threshold, however the stream is split.

Bounds: every hold point is kept up to date from the new text of each batch, and what is held is
capped at ``max_hold_chars``; past the cap the oldest text is released, and a secret that is still
going on there is redacted up to the cut and the rest of it (to the end of its token, or of its key
block) is dropped. So a check costs time in proportion to the new text, and a stream never stalls.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from bastion.guard.budget import BUDGET_FINDING, BUDGET_SCANNER
from bastion.guard.engine import OutputGuard, action_for, redact, typed_placeholder
from bastion.guard.leak import ASCII_WORD_RE as _ASCII_WORD_RE
from bastion.guard.leak import CONTINUES_WORD_RE as _CONTINUES_WORD_RE
from bastion.guard.leak import LEAK_FINDING_TYPES, ends_inside_word, words_with_spans
from bastion.guard.models import ACTION_RANK, Action, Finding, GuardResult, Verdict
from bastion.guard.normalize import alnum_fold
from bastion.guard.spans import drop_overlapping
from bastion.guard.stream_holds import EntityHolds

_CONTEXT_CHARS = 96  # already-released text kept as left context for the detectors
# How far past the release point the detectors look, to see an entity that crosses it. Entities
# with spaces inside (phone and card numbers, dates) are far shorter; longer ones are single tokens,
# which the token hold keeps whole.
_LOOKAHEAD_CHARS = 256
# Cheap test for "might this contain PII or a secret at all": a digit or "@", or a keyword.
_DIGIT_OR_AT_RE = re.compile(r"[0-9@]")
_SENSITIVE_WORDS = ("://", "-----", "pass", "secret", "token", "key", "bearer", "pwd", "credential", "eyj")
_HINT_REACH = 96
_LONG_RUN_RE = re.compile(r"[A-Za-z0-9+/=_%\\-]{16,}")
# Characters that may spell part of the canary: ASCII letters and digits, and anything non-ASCII
# (it may fold to a letter).
_CANARY_CHAR_RE = re.compile(r"[A-Za-z0-9]|[^\x00-\x7f]")
# Where a secret cut at the hold cap ends: its token at whitespace, a key block at its end line.
_WHITESPACE_RE = re.compile(r"\s")
_KEY_END_RE = re.compile(r"-----END[^\n]{0,64}?-----|Private-MAC: [0-9a-fA-F]*")
_KEY_END_TAIL = 96  # kept while dropping a key block: may hold the start of its end line
_LONG_WORD = "\x00"  # stands for a word too long to be a prompt word


class StreamingOutputGuard:
    """Incremental ``OutputGuard`` for a stream of text deltas. One instance per response."""

    def __init__(self, guard: OutputGuard, *, min_batch_chars: int = 64, max_hold_chars: int = 16384) -> None:
        """``min_batch_chars``: deltas are checked in batches of at least this many characters, which
        bounds the per-delta cost when a model streams one token at a time (the text is held anyway
        until checked, so a batch adds at most that many characters of delay).

        ``max_hold_chars``: at most this much text is held back (a private key block is the longest
        thing held on purpose); older text is released past it."""
        self.guard = guard
        self.min_batch_chars = min_batch_chars
        self.max_hold_chars = max(max_hold_chars, 2 * _CONTEXT_CHARS + _LOOKAHEAD_CHARS)
        self._unchecked = 0  # characters at the end of ``_pending`` not yet checked
        policy = guard.policy
        fingerprint = guard.fingerprint
        self._elapsed = 0.0  # time spent checking; the scan budget applies to it
        self._budget_s = policy.scan_budget_ms / 1000
        self._budget_exceeded = False
        self._unguarded = False  # the budget ran out in ``flag`` mode: text passes unchecked
        self._pending = ""  # raw text received but not yet released
        self._offset = 0  # absolute offset of ``_pending`` in the whole stream
        self._context = ""  # tail of the released raw text
        self._released: list[str] = []
        self._blocked = False
        self._finished = False
        self._findings: dict[tuple[str, int, int], Finding] = {}
        # Leak state.
        leak_action = action_for("leak", policy.leak, True)
        self._leak_on = guard.leak_enabled
        self._leak_blocks = self._leak_on and leak_action == "block"
        self._canary = fingerprint.canary_folded if self._leak_on else ""
        self._canary_tail = ""  # folded tail of the stream, shorter than the canary
        self._canary_found = False
        # Absolute offsets of the stream's last characters that may spell the canary, found lazily
        # (only while the tail could start the canary) up to ``_canary_scanned``.
        self._canary_chars: deque[int] = deque(maxlen=max(1, len(self._canary)))
        self._canary_scanned = 0
        self._ngram = fingerprint.ngram if self._leak_on else 0
        self._shingles = fingerprint.shingles
        self._needed = max(1, math.ceil(policy.leak_threshold * len(self._shingles) - 1e-9)) if self._shingles else 0
        self._matched: set[tuple[str, ...]] = set()
        self._vocabulary = fingerprint.vocabulary
        self._vocabulary_run = 0  # how many of the latest words are prompt words
        self._recent_words: list[str] = []  # the last n-1 checked words
        # Absolute starts of the latest complete words: enough for the longest run anything holds.
        self._word_starts: deque[int] = deque(maxlen=self._needed + self._ngram + 1)
        self._carry = ""  # raw partial word at the end of the stream
        self._carry_start = 0
        # A word in progress longer than any prompt word (raw characters, invisible ones included)
        # cannot be part of a shingle: it is no longer carried, only skipped until it ends.
        self._max_word_chars = max(64, 4 * fingerprint.max_word_chars)
        self._carry_overflow = False
        # Transformed copies (``leak_copies``): read over the same checked text, incrementally.
        self._copies = fingerprint.copy_tracker(policy.leak_threshold) if self._leak_on else None
        # Redaction state.
        self._redact_pii = guard.pii_mode in ("redact", "block")
        self._redact_secrets = guard.secrets_mode in ("redact", "block")
        self._watch_entities = guard.pii_mode != "off" or guard.secrets_mode != "off"
        self._entity_holds = (
            EntityHolds() if self._watch_entities and (self._redact_pii or self._redact_secrets) else None
        )
        self._hint_end = 0  # absolute offset after the last PII/secret hint seen in the stream
        self._retry_at = 0  # absolute end of pending before which a held entity is not rescanned
        self._dropping: str | None = None  # "token" or "key": the rest of a secret cut at the cap

    # --- public API --------------------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        return self._blocked

    def feed(self, delta: str) -> str:
        """Take the next piece of model output; return the text that may be sent to the client now."""
        if self._blocked or self._finished or not delta:
            return ""
        if self._unguarded:
            self._offset += len(delta)
            self._released.append(delta)
            return delta
        self._pending += delta
        self._unchecked += len(delta)
        if self._unchecked < self.min_batch_chars:
            return ""
        started = time.perf_counter()
        released = self._check_and_release(final=False)
        self._elapsed += time.perf_counter() - started
        return released + self._check_budget()

    def finish(self) -> str:
        """End of stream: run the last checks and return the remainder (empty if blocked)."""
        if self._finished:
            return ""
        self._finished = True
        if self._blocked or self._unguarded:
            return ""
        started = time.perf_counter()
        self._check_and_release(final=None)
        if self._blocked:
            self._elapsed += time.perf_counter() - started
            return ""
        if self._leak_on:
            self._track_words("", final=True)
            if (
                self._canary
                and not self._canary_found
                and self.guard.fingerprint.scan(self._pending, threshold=1.0).canary_found
            ):
                self._on_canary()
            if not self._blocked:
                self._track_copies(None)
        released = "" if self._blocked else self._release(final=True)
        self._elapsed += time.perf_counter() - started
        return released

    @property
    def text(self) -> str:
        """Everything released so far."""
        return "".join(self._released)

    @property
    def result(self) -> GuardResult:
        """The verdicts for the stream so far (complete after ``finish``)."""
        policy = self.guard.policy
        verdicts: list[Verdict] = []
        findings = sorted(self._findings.values(), key=lambda f: (f.start, f.type))
        if self._leak_on:
            overlap = len(self._matched) / len(self._shingles) if self._shingles else 0.0
            copied = self._copies is not None and self._copies.found
            if self._copies is not None:
                overlap = max(overlap, self._copies.score)
            score = 1.0 if self._canary_found else overlap
            flagged = copied or self._canary_found or (bool(self._shingles) and overlap >= policy.leak_threshold)
            leak_findings = [f for f in findings if f.type in LEAK_FINDING_TYPES]
            verdicts.append(Verdict("leak", score, flagged, leak_findings, action_for("leak", policy.leak, flagged)))
        for scanner, mode, is_secret in (
            ("secrets", self.guard.secrets_mode, True),
            ("pii", self.guard.pii_mode, False),
        ):
            if mode == "off":
                continue
            own = [f for f in findings if f.type not in _NOT_ENTITY_TYPES and _is_secret(f) == is_secret]
            flagged = bool(own)
            score = max((f.score for f in own), default=0.0)
            verdicts.append(Verdict(scanner, score, flagged, own, action_for(scanner, mode, flagged)))
        if self._budget_exceeded:
            budget = [f for f in findings if f.type == BUDGET_FINDING]
            verdicts.append(Verdict(BUDGET_SCANNER, 1.0, True, budget, policy.scan_budget_action))
        action: Action = "allow"
        for verdict in verdicts:
            if ACTION_RANK[verdict.action] > ACTION_RANK[action]:
                action = verdict.action
        if self._blocked:
            action = "block"
        return GuardResult(action=action, text=self.text, verdicts=verdicts, elapsed_us=self._elapsed * 1e6)

    def _check_budget(self) -> str:
        """The scan budget (``GuardPolicy.scan_budget_ms``) covers the whole stream's checks."""
        if self._elapsed <= self._budget_s or self._blocked:
            return ""
        self._budget_exceeded = True
        end = self._offset + len(self._pending)
        self._add(Finding(BUDGET_FINDING, end, end, 1.0))
        if self.guard.policy.scan_budget_action == "block":
            self._blocked = True
            return ""
        # ``flag``: recorded; the rest of the stream goes out as it comes, unchecked.
        self._unguarded = True
        rest, self._pending = self._pending, ""
        self._offset += len(rest)
        self._released.append(rest)
        return rest

    def _check_and_release(self, *, final: bool | None) -> str:
        """Check the unchecked tail, then release what is safe (``final=None``: check only)."""
        if self._unchecked:
            new_text = self._pending[-self._unchecked :]
            # Look for a PII/secret hint in the new text (with a little overlap for keywords cut by
            # the batch boundary) and remember where it was, instead of rescanning the buffer.
            # The hint stays on for the next stretch of text too: "api_key =" may end one batch and
            # its value start the next.
            if self._watch_entities and _has_entity_hint(self._pending[-(self._unchecked + 12) :]):
                self._hint_end = self._offset + len(self._pending) + _HINT_REACH
            if self._entity_holds is not None:
                self._entity_holds.update(self._pending, self._offset, self._unchecked)
            self._unchecked = 0
            if self._leak_on:
                self._track_canary(new_text)
                if not self._blocked:
                    self._track_words(new_text, final=False)
                if not self._blocked:
                    self._track_copies(new_text)
        if self._blocked or final is None:
            return ""
        return self._release(final=final)

    # --- leak tracking -----------------------------------------------------------------------

    def _track_canary(self, delta: str) -> None:
        if not self._canary:
            return
        window = self._canary_tail + alnum_fold(delta)
        if self._canary in window:
            self._on_canary()
            return
        self._canary_tail = window[-(len(self._canary) - 1) :] if len(self._canary) > 1 else ""

    def _track_copies(self, text: str | None) -> None:
        """Feed newly checked text to the transformed-copy tracker (``None``: the end of the stream)."""
        copies = self._copies
        if copies is None or copies.found:
            return
        if not (copies.finish() if text is None else copies.feed(text)):
            return
        if copies.canary_found:
            if not self._canary_found:
                self._on_canary()
            return
        self._add(Finding(copies.finding_type, self._offset, self._offset + len(self._pending), 1.0))
        if self._leak_blocks:
            self._blocked = True

    def _on_canary(self) -> None:
        self._canary_found = True
        self._add(Finding("CANARY", self._offset, self._offset + len(self._pending), 1.0))
        if self._leak_blocks:
            self._blocked = True

    def _track_words(self, delta: str, *, final: bool) -> None:
        """Advance the shingle matcher over newly checked text (the word in progress is carried)."""
        if not self._ngram:
            return
        delta_start = self._offset + len(self._pending) - len(delta)
        if self._carry_overflow:
            # Still inside a word too long to be a prompt word: skip to its end.
            skipped = _CONTINUES_WORD_RE.match(delta)
            cut = skipped.end() if skipped is not None else 0
            if cut == len(delta) and not final:
                return
            self._carry_overflow = False
            delta, delta_start = delta[cut:], delta_start + cut
        chunk_start = self._carry_start if self._carry else delta_start
        chunk = self._carry + delta
        if not chunk:
            return
        if chunk.isascii():  # the common case: folding is lower-casing, offsets are unchanged
            spanned = [(m.group(), m.start()) for m in _ASCII_WORD_RE.finditer(chunk.lower())]
        else:
            spanned = [(word, start) for word, start, _ in words_with_spans(chunk)]
        if not final and spanned and ends_inside_word(chunk):
            word, start = spanned.pop()
            self._carry, self._carry_start = chunk[start:], chunk_start + start
            if len(self._carry) > self._max_word_chars:
                self._carry, self._carry_overflow = "", True
        else:
            self._carry = ""
        n = self._ngram
        history = self._recent_words
        words = [word for word, _ in spanned]
        complete = len(words)
        if self._carry_overflow:
            words.append(_LONG_WORD)  # no shingle runs through it
        sequence = [*history, *words]
        offset = len(history)
        vocabulary, run = self._vocabulary, self._vocabulary_run
        starts = self._word_starts
        for index, word in enumerate(words):
            if index < complete:
                starts.append(chunk_start + spanned[index][1])
            # A shingle can only match once n words in a row are prompt words: skip the tuple otherwise.
            run = run + 1 if word in vocabulary else 0
            if run < n:
                continue
            end = offset + index + 1
            shingle = tuple(sequence[end - n : end])
            if shingle in self._shingles and shingle not in self._matched:
                self._matched.add(shingle)
                if len(self._matched) >= self._needed:
                    self._add(Finding("PROMPT_OVERLAP", chunk_start, chunk_start + len(chunk), 1.0))
                    if self._leak_blocks:
                        self._blocked = True
                        break
        self._vocabulary_run = run
        self._recent_words = sequence[-(n - 1) :] if n > 1 else []

    # --- release -----------------------------------------------------------------------------

    def _hold_from(self) -> int:
        """Offset in ``_pending`` from which text must be held back."""
        pending = self._pending
        hold = len(pending)
        if self._leak_blocks:
            if self._ngram:
                hold = min(hold, self._shingle_hold(pending))
            if self._canary:
                hold = min(hold, self._canary_prefix_start())
        if self._entity_holds is not None:
            hold = min(hold, self._entity_holds.hold_from(pending, self._offset))
        # Whatever the reasons, never more than the cap.
        return max(0, hold, len(pending) - self.max_hold_chars)

    def _shingle_hold(self, pending: str) -> int:
        """Start of the last n-1 complete words plus the word in progress: a later word could still
        complete a leaking shingle with them."""
        if self._carry_overflow:
            return len(pending)  # the word in progress is no prompt word: no shingle can span it
        keep = self._ngram - 1 + (1 if self._carry else 0)
        if keep <= 0:
            return len(pending)
        return self._last_words_start(pending, keep)

    def _last_words_start(self, pending: str, keep: int) -> int:
        """Start (in ``pending``) of the stream's last ``keep`` words, the one in progress included;
        0 when they do not all lie in ``pending``."""
        starts = self._word_starts
        if self._carry:
            if keep == 1:
                return max(0, self._carry_start - self._offset)
            keep -= 1
        if len(starts) < keep:
            return 0
        return max(0, starts[-keep] - self._offset)

    def _canary_prefix_start(self) -> int:
        """Start (in ``_pending``) of the trailing characters that spell a prefix of the canary."""
        tail, canary = self._canary_tail, self._canary
        # Candidate starts are the places where the canary's first character occurs in the tail.
        length = 0
        index = tail.find(canary[0])
        while index >= 0:
            if canary.startswith(tail[index:]):
                length = len(tail) - index
                break
            index = tail.find(canary[0], index + 1)
        if not length:
            return len(self._pending)
        # The ``length``-th last character that may spell the canary (non-ASCII characters count
        # too: they may fold to letters). Only text not looked at before is searched.
        pending, offset = self._pending, self._offset
        start = max(0, self._canary_scanned - offset)
        chars = self._canary_chars
        chars.extend(offset + m.start() for m in _CANARY_CHAR_RE.finditer(pending, start))
        self._canary_scanned = offset + len(pending)
        if len(chars) < length:
            return 0
        return max(0, chars[-length] - offset)

    def _release(self, *, final: bool) -> str:
        if self._dropping is not None:
            self._drop_cut_secret(final=final)
        pending = self._pending
        if not final and len(pending) <= self.max_hold_chars and self._offset + len(pending) < self._retry_at:
            return ""  # an entity crossing the release point is still being written
        safe = len(pending) if final else self._hold_from()
        if safe <= 0:
            return ""
        chunk_findings: list[Finding] = []
        dropping: str | None = None
        if self._watch_entities and self._hint_end > self._offset:
            window = self._context + (pending if final else pending[: safe + _LOOKAHEAD_CHARS])
            shift = len(self._context)
            held_back = False
            for finding in self._entity_findings(window):
                start, end = finding.start - shift, finding.end - shift
                if end <= 0:
                    continue  # inside the already-released context
                if start < safe < end and not final and self._redacts(finding):
                    if len(pending) - start <= self.max_hold_chars:
                        safe = max(0, start)  # an entity crosses the release point: hold all of it
                        held_back = True
                    else:
                        # Past the cap: redact it up to the cut and drop the rest of it as it comes.
                        end = safe
                        dropping = "key" if finding.type == "PRIVATE_KEY" else "token"
                chunk_findings.append(Finding(finding.type, max(0, start), end, finding.score))
            if held_back:
                # Look again once the stream has grown by as much again: rescanning the held entity
                # on every batch would cost time in proportion to it, not to the new text.
                self._retry_at = self._offset + 2 * len(pending)
        if safe <= 0:
            return ""
        released_raw = pending[:safe]
        # An encoded canary is one long token: check it before it goes out.
        if (
            self._canary
            and self._leak_blocks
            and _LONG_RUN_RE.search(released_raw)
            and self.guard.fingerprint.canary_in_payloads(released_raw)
        ):
            self._on_canary()
            return ""
        to_redact = []
        for finding in chunk_findings:
            if finding.end <= safe and self._blocks(finding):
                # A scanner in block mode found something: stop before any of it goes out.
                self._add(
                    Finding(finding.type, finding.start + self._offset, finding.end + self._offset, finding.score)
                )
                self._blocked = True
                return ""
            if finding.end <= safe:
                self._add(
                    Finding(finding.type, finding.start + self._offset, finding.end + self._offset, finding.score)
                )
                if self._redacts(finding):
                    to_redact.append(finding)
        released = redact(released_raw, to_redact, typed_placeholder) if to_redact else released_raw
        self._pending = pending[safe:]
        self._offset += safe
        self._context = (self._context + released_raw)[-_CONTEXT_CHARS:]
        self._released.append(released)
        if dropping is not None:
            self._dropping = dropping
            self._context = ""  # it ends inside the secret: no left context for what follows it
            self._drop_cut_secret(final=final)
        return released

    def _drop_cut_secret(self, *, final: bool) -> None:
        """Drop the rest of a secret that was cut at the hold cap: to the end of its token, or of its
        key block. What is dropped was never released; its placeholder already went out."""
        pending = self._pending
        done = True
        if self._dropping == "token":
            match = _WHITESPACE_RE.search(pending)
            cut = match.start() if match is not None else len(pending)
            done = match is not None
        else:
            match = _KEY_END_RE.search(pending)
            if match is not None:
                cut = match.end()
            else:
                cut, done = max(0, len(pending) - _KEY_END_TAIL), False
        if final:
            cut, done = (cut if done else len(pending)), True
        self._pending = pending[cut:]
        self._offset += cut
        if done:
            self._dropping = None

    def _redacts(self, finding: Finding) -> bool:
        return self._redact_secrets if _is_secret(finding) else self._redact_pii

    def _blocks(self, finding: Finding) -> bool:
        mode = self.guard.secrets_mode if _is_secret(finding) else self.guard.pii_mode
        return mode == "block"

    def _entity_findings(self, window: str) -> list[Finding]:
        secrets = self.guard.scan_secrets(window)
        pii = self.guard.scan_pii(window)
        if secrets and pii:
            pii = drop_overlapping(pii, secrets)
        return [*secrets, *pii]

    def _add(self, finding: Finding) -> None:
        self._findings.setdefault((finding.type, finding.start, finding.end), finding)


_PII_TYPES = frozenset(
    {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "MAC_ADDRESS",
     "US_DRIVER_LICENSE", "US_PASSPORT", "CRYPTO", "DATE_TIME", "AGE", "DOMAIN_NAME"}
)  # fmt: skip
_NOT_ENTITY_TYPES = LEAK_FINDING_TYPES | {BUDGET_FINDING}


def _has_entity_hint(text: str) -> bool:
    if _DIGIT_OR_AT_RE.search(text) is not None or _LONG_RUN_RE.search(text) is not None:
        return True
    lowered = text.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def _is_secret(finding: Finding) -> bool:
    return finding.type not in _PII_TYPES
