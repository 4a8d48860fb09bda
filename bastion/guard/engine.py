"""The guards the gateway calls: ``InputGuard`` before the model, ``OutputGuard`` after it.

Each guard is built once per policy (detectors and patterns are compiled at import or build time)
and is safe to share between concurrent requests. A scan returns a ``GuardResult``: the final
action, the text to forward (redacted when a redacting scanner flagged), and one verdict per
scanner that ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import bastion.guard.budget as budget
from bastion.config.guard_policy import GuardPolicy, Mode
from bastion.guard.injection import InjectionDetector
from bastion.guard.injection_model import shared_model
from bastion.guard.invisible import scan_invisible
from bastion.guard.leak import PromptFingerprint
from bastion.guard.models import ACTION_RANK, Action, Finding, GuardResult, Verdict
from bastion.guard.ner import NamedEntityDetector, resolve
from bastion.guard.pii import PiiDetector
from bastion.guard.secrets import SecretDetector
from bastion.guard.spans import drop_overlapping

#: Scanners that have no meaningful redaction: ``redact`` escalates to ``block``.
_UNREDACTABLE = frozenset({"injection", "leak"})
#: Message content part types that carry text.
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


@lru_cache(maxsize=4)
def shared_injection_detector(decode_payloads: bool = True, use_model: bool = True) -> InjectionDetector:
    return InjectionDetector(decode_payloads=decode_payloads, use_model=use_model)


def injection_thresholds(policy: GuardPolicy) -> tuple[float, float]:
    """(flag, block) thresholds of a policy: its own where set, else the model's calibrated ones."""
    if policy.injection_model:
        model = shared_model()
        default_flag, default_block = model.flag_threshold, model.block_threshold
    else:
        default_flag = default_block = 0.5
    flag = policy.injection_threshold if policy.injection_threshold is not None else default_flag
    block = policy.injection_block_threshold if policy.injection_block_threshold is not None else default_block
    return flag, max(flag, block)


def injection_action(mode: Mode, score: float, flag_at: float, block_at: float) -> tuple[bool, Action]:
    """Whether the injection scanner flags, and the action: ``block`` (and ``redact``, which has no
    meaning for an injection) blocks at ``block_at`` and flags between the thresholds."""
    flagged = score >= flag_at
    if mode == "off" or not flagged:
        return flagged, "allow"
    if mode in ("block", "redact"):
        return True, "block" if score >= block_at else "flag"
    return True, mode


@lru_cache(maxsize=1)
def shared_secret_detector() -> SecretDetector:
    return SecretDetector()


def action_for(scanner: str, mode: Mode, flagged: bool) -> Action:
    if not flagged or mode == "off":
        return "allow"
    if mode == "redact" and scanner in _UNREDACTABLE:
        return "block"
    return mode


def redact(text: str, findings: Sequence[Finding], placeholder: Callable[[Finding], str]) -> str:
    """Replace each finding's span with its placeholder; overlapping findings merge into the first."""
    if not findings:
        return text
    pieces: list[str] = []
    last = 0
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start < last:
            last = max(last, finding.end)
            continue
        pieces.append(text[last : finding.start])
        pieces.append(placeholder(finding))
        last = finding.end
    pieces.append(text[last:])
    return "".join(pieces)


def typed_placeholder(finding: Finding) -> str:
    """``[EMAIL_ADDRESS]``, ``[AWS_ACCESS_KEY_ID]``...; invisible characters are simply removed."""
    return "" if finding.type in _INVISIBLE_TYPES else f"[{finding.type}]"


_INVISIBLE_TYPES = frozenset({"ZERO_WIDTH", "BIDI_CONTROL", "TAG_CHARACTERS", "VARIATION_SELECTORS", "PRIVATE_USE"})


def _combine(verdicts: list[Verdict]) -> Action:
    action: Action = "allow"
    for verdict in verdicts:
        if ACTION_RANK[verdict.action] > ACTION_RANK[action]:
            action = verdict.action
    return action


class _MessageBudgetExceeded(Exception):
    """The scan budget ran out in message ``index`` (content part ``part``)."""

    def __init__(self, index: int, part: int | None) -> None:
        super().__init__(index, part)
        self.index = index
        self.part = part


class _TextScan:
    """Per-text scan output before it is folded into a result (one per message part)."""

    __slots__ = ("redacted", "verdicts")

    def __init__(self, verdicts: list[Verdict], redacted: str) -> None:
        self.verdicts = verdicts
        self.redacted = redacted


class InputGuard:
    """Scans what goes to the model: invisible text, secrets, PII, prompt injection."""

    def __init__(self, policy: GuardPolicy | None = None) -> None:
        self.policy = policy or GuardPolicy()
        p = self.policy
        self._pii = PiiDetector(p.pii_entities, all_dates=p.pii_all_dates) if p.pii != "off" else None
        # Names, places, addresses: only when the policy asks (pii_ner), it costs milliseconds.
        self._ner = NamedEntityDetector(p.ner_entities) if p.pii != "off" and p.ner_entities else None
        self._secrets = shared_secret_detector() if p.secrets != "off" else None
        self._injection = (
            shared_injection_detector(p.decode_payloads, p.injection_model) if p.injection != "off" else None
        )
        self._injection_at = injection_thresholds(p) if p.injection != "off" else (1.0, 1.0)
        self._scan_roles = frozenset(p.scan_roles)

    @classmethod
    def for_policy(cls, policy: GuardPolicy) -> InputGuard:
        """A cached guard for ``policy`` (policies are hashable), so callers need not keep one."""
        return _cached_input_guard(policy)

    @property
    def scan_roles(self) -> frozenset[str]:
        return self._scan_roles

    def scan_text(self, text: str) -> GuardResult:
        """Scan one text. Past the policy's scan budget the result carries a ``scan_budget`` verdict
        and, in ``flag`` mode, the text unchanged."""
        started = time.perf_counter()
        with budget.ScanDeadline(self.policy.scan_budget_ms):
            try:
                scan = self._scan(text)
            except budget.ScanBudgetExceeded:
                scan = _TextScan([budget.budget_verdict(self.policy.scan_budget_action)], text)
        return GuardResult(
            action=_combine(scan.verdicts),
            text=scan.redacted,
            verdicts=scan.verdicts,
            elapsed_us=(time.perf_counter() - started) * 1e6,
        )

    def scan_messages(self, messages: Sequence[Mapping[str, Any]]) -> GuardResult:
        """Scan the user/tool content of OpenAI-shaped messages; system/developer content is trusted.

        ``result.messages`` holds the messages to forward: redacted copies where something was
        redacted, the original objects otherwise. Past the policy's scan budget the result carries
        a ``scan_budget`` verdict; the messages not scanned by then are forwarded as they are (for
        ``flag``: ``block`` forwards nothing).
        """
        started = time.perf_counter()
        merged: dict[str, Verdict] = {}
        out_messages: list[dict[str, Any]] = []
        with budget.ScanDeadline(self.policy.scan_budget_ms):
            try:
                for index, message in enumerate(messages):
                    out_messages.append(self._scan_message(index, message, merged))
            except _MessageBudgetExceeded as exceeded:
                out_messages.extend(dict(message) for message in messages[len(out_messages) :])
                merged[budget.BUDGET_SCANNER] = budget.budget_verdict(
                    self.policy.scan_budget_action, message_index=exceeded.index, part_index=exceeded.part
                )
        verdicts = list(merged.values())
        return GuardResult(
            action=_combine(verdicts),
            text="",
            verdicts=verdicts,
            messages=out_messages,
            elapsed_us=(time.perf_counter() - started) * 1e6,
        )

    def _scan_message(self, index: int, message: Mapping[str, Any], merged: dict[str, Verdict]) -> dict[str, Any]:
        """The message to forward (scanned and redacted if its role is scanned)."""
        if message.get("role") not in self._scan_roles:
            return dict(message)
        content = message.get("content")
        if isinstance(content, str):
            scan = self._budgeted_scan(content, index, None)
            self._merge(merged, scan.verdicts, index, None)
            return {**message, "content": scan.redacted} if scan.redacted != content else dict(message)
        if not isinstance(content, list):
            return dict(message)
        new_parts: list[Any] = []
        changed = False
        for part_index, part in enumerate(content):
            text = part.get("text") if isinstance(part, Mapping) else None
            if not isinstance(text, str) or part.get("type") not in _TEXT_PART_TYPES:
                new_parts.append(part)
                continue
            scan = self._budgeted_scan(text, index, part_index)
            self._merge(merged, scan.verdicts, index, part_index)
            if scan.redacted != text:
                changed = True
                new_parts.append({**part, "text": scan.redacted})
            else:
                new_parts.append(part)
        return {**message, "content": new_parts} if changed else dict(message)

    def _budgeted_scan(self, text: str, index: int, part: int | None) -> _TextScan:
        try:
            budget.check()
            return self._scan(text)
        except budget.ScanBudgetExceeded:
            raise _MessageBudgetExceeded(index, part) from None

    @staticmethod
    def _merge(merged: dict[str, Verdict], verdicts: list[Verdict], index: int, part: int | None) -> None:
        for verdict in verdicts:
            located = [
                Finding(f.type, f.start, f.end, f.score, message_index=index, part_index=part) for f in verdict.findings
            ]
            current = merged.get(verdict.scanner)
            if current is None:
                merged[verdict.scanner] = Verdict(
                    verdict.scanner, verdict.score, verdict.flagged, located, verdict.action
                )
                continue
            current.score = max(current.score, verdict.score)
            current.flagged = current.flagged or verdict.flagged
            current.findings.extend(located)
            if ACTION_RANK[verdict.action] > ACTION_RANK[current.action]:
                current.action = verdict.action

    def _scan(self, text: str) -> _TextScan:
        p = self.policy
        verdicts: list[Verdict] = []
        redactions: list[Finding] = []
        hidden_text = ""
        if p.invisible != "off":
            invisible = scan_invisible(text)
            hidden_text = invisible.hidden_text
            action = action_for("invisible", p.invisible, invisible.flagged)
            verdicts.append(
                Verdict("invisible", 1.0 if invisible.flagged else 0.0, invisible.flagged, invisible.findings, action)
            )
            if action in ("redact", "block"):
                redactions.extend(invisible.findings)
        secret_findings: list[Finding] = []
        if self._secrets is not None:
            budget.check()
            secret_findings = self._secrets.scan(text)
            verdicts.append(_entity_verdict("secrets", p.secrets, secret_findings, redactions))
        if self._pii is not None:
            budget.check()
            pii_findings = drop_overlapping(self._pii.scan(text), secret_findings)
            if self._ner is not None:
                pii_findings = resolve(pii_findings, drop_overlapping(self._ner.scan(text), secret_findings))
            verdicts.append(_entity_verdict("pii", p.pii, pii_findings, redactions))
        if self._injection is not None:
            budget.check()
            injection = self._injection.scan(text, hidden_text=hidden_text)
            flagged, action = injection_action(p.injection, injection.score, *self._injection_at)
            verdicts.append(Verdict("injection", injection.score, flagged, injection.findings, action))
        redacted = redact(text, redactions, typed_placeholder) if redactions else text
        return _TextScan(verdicts, redacted)


def _entity_verdict(scanner: str, mode: Mode, findings: list[Finding], redactions: list[Finding]) -> Verdict:
    """Verdict for a scanner whose findings are entities (PII, secrets), collecting redactions."""
    flagged = bool(findings)
    action = action_for(scanner, mode, flagged)
    if action in ("redact", "block"):
        redactions.extend(findings)
    score = max((f.score for f in findings), default=0.0)
    return Verdict(scanner, score, flagged, findings, action)


@lru_cache(maxsize=256)
def _cached_input_guard(policy: GuardPolicy) -> InputGuard:
    return InputGuard(policy)


class OutputGuard:
    """Scans what comes back from the model: system-prompt leaks, secrets, PII.

    ``system_prompt`` is the real (decrypted) prompt the model was given and ``canary`` the marker
    planted in it; either may be omitted, and the leak scanner then uses what it has.
    """

    def __init__(
        self,
        policy: GuardPolicy | None = None,
        system_prompt: str | None = None,
        canary: str | None = None,
    ) -> None:
        self.policy = policy or GuardPolicy()
        p = self.policy
        self.pii_mode: Mode = p.effective_output_pii
        self.secrets_mode: Mode = p.effective_output_secrets
        self._pii = PiiDetector(p.pii_entities, all_dates=p.pii_all_dates) if self.pii_mode != "off" else None
        self._secrets = shared_secret_detector() if self.secrets_mode != "off" else None
        self.fingerprint = PromptFingerprint(system_prompt, canary, ngram=p.leak_ngram)
        self._leak_on = p.leak != "off" and self.fingerprint.active

    @property
    def leak_enabled(self) -> bool:
        return self._leak_on

    def scan_text(self, text: str) -> GuardResult:
        """Scan one answer. Past the policy's scan budget the result carries a ``scan_budget``
        verdict and, in ``flag`` mode, the text unchanged."""
        started = time.perf_counter()
        with budget.ScanDeadline(self.policy.scan_budget_ms):
            try:
                verdicts, redactions = self.scan_parts(text)
            except budget.ScanBudgetExceeded:
                verdicts, redactions = [budget.budget_verdict(self.policy.scan_budget_action)], []
        redacted = redact(text, redactions, typed_placeholder) if redactions else text
        return GuardResult(
            action=_combine(verdicts),
            text=redacted,
            verdicts=verdicts,
            elapsed_us=(time.perf_counter() - started) * 1e6,
        )

    def scan_parts(self, text: str) -> tuple[list[Verdict], list[Finding]]:
        """Verdicts and the findings to redact; shared with the streaming guard."""
        p = self.policy
        verdicts: list[Verdict] = []
        redactions: list[Finding] = []
        if self._leak_on:
            leak = self.fingerprint.scan(text, threshold=p.leak_threshold)
            flagged = leak.canary_found or leak.score >= p.leak_threshold
            verdicts.append(Verdict("leak", leak.score, flagged, leak.findings, action_for("leak", p.leak, flagged)))
        budget.check()
        secret_findings = self.scan_secrets(text)
        if self._secrets is not None:
            verdicts.append(_entity_verdict("secrets", self.secrets_mode, secret_findings, redactions))
        if self._pii is not None:
            budget.check()
            pii_findings = drop_overlapping(self._pii.scan(text), secret_findings)
            verdicts.append(_entity_verdict("pii", self.pii_mode, pii_findings, redactions))
        return verdicts, redactions

    def scan_secrets(self, text: str) -> list[Finding]:
        return self._secrets.scan(text) if self._secrets is not None else []

    def scan_pii(self, text: str) -> list[Finding]:
        return self._pii.scan(text) if self._pii is not None else []
