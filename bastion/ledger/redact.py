"""Content redaction for the ledger: everything in ``redacted`` mode; in every mode, the fields a
client fills freely and (per ``ledger.system_messages``) the caller's own system messages.

It runs in the background writer, never on the request path. The guard's detectors are used when
the guard package is installed (they validate check digits and know many more secret formats); a
small regex redactor of our own covers the common cases otherwise.

With ``names`` (``ledger.redact_names``), the content of ``redacted``-mode records also loses person
names, organisations, places, street addresses, titles and postcodes (the guard's named-entity tier,
``bastion.guard.redaction``). That costs milliseconds per kilobyte, so the writer runs it in a
worker thread of its own; the client fields and system messages, short and kept for debugging, get
the structured redaction only.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog

from bastion.observability.logging import redact_secret_text

log = structlog.get_logger("bastion.ledger")

TextRedactor = Callable[[str], str]

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]\d{3,4}[ .-]\d{3,4}(?![\w])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CREDIT_CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def regex_redact(text: str) -> str:
    """Our own redactor: secrets and API keys, then emails, cards (Luhn), SSNs, IBANs, IPs, phones."""
    text = redact_secret_text(text)
    text = _EMAIL.sub("[EMAIL_ADDRESS]", text)
    if any(c.isdigit() for c in text):
        text = _CARD.sub(_card, text)
        text = _SSN.sub("[US_SSN]", text)
        text = _IBAN.sub("[IBAN_CODE]", text)
        text = _IPV4.sub("[IP_ADDRESS]", text)
        text = _PHONE.sub("[PHONE_NUMBER]", text)
    return text


def _names_redactor() -> TextRedactor | None:
    """Structured PII, secrets and named entities (``bastion.guard.redaction``); None if the guard or
    its entity model is not installed, or the redactor fails its self-check."""
    try:
        from bastion.guard import ner  # the model costs half a second to load: on first use
        from bastion.guard.redaction import redact_pii

        if not ner.available():
            raise ner.NerUnavailable(f"{ner.MODEL_PACKAGE} is not installed")
        probe = "Ask Margaret Hamilton at 14 Crown Street or alice.smith@corp-mail.io"
        out = redact_pii(probe)
        if "Crown Street" in out or "alice.smith@corp-mail.io" in out:
            raise ValueError("named-entity redaction did not redact the probe text")
    except Exception as exc:  # names are a bonus on top of the structured redaction, which still runs
        log.warning("ledger_name_redaction_unavailable", error=str(exc))
        return None

    def redact(text: str) -> str:
        return redact_secret_text(redact_pii(text))

    return redact


def _guard_redactor() -> TextRedactor | None:
    """The guard's redaction (PII and secrets, redact mode); None if it fails its self-check."""
    from bastion.guard import GuardPolicy, InputGuard  # the guard's detectors cost a second to build: on first use

    try:
        policy = GuardPolicy(pii="redact", secrets="redact", injection="off", invisible="off")
        guard = InputGuard.for_policy(policy)
        scan: Callable[[str], Any] = guard.scan_text
        probe = "write to alice.smith@corp-mail.io"
        if "alice.smith@corp-mail.io" in scan(probe).text:
            raise ValueError("guard did not redact the probe text")
    except Exception as exc:  # an API mismatch must not stop the ledger: use our own redactor
        log.warning("ledger_guard_redaction_unavailable", error=str(exc))
        return None

    def redact(text: str) -> str:
        # Secrets our log redactor knows (Bastion keys, bearer tokens) stay covered either way.
        return redact_secret_text(scan(text).text)

    return redact


class ContentRedactor:
    """Redacts message contents and answer text in the shapes the ledger stores.

    ``text``/``messages``: the structured redaction (PII with check digits, secrets).
    ``content``/``content_messages``: what ``redacted`` mode stores; the same plus named entities
    when built with ``names`` (and the entity model is installed), else the same as ``text``.

    Short texts come back again and again (user agents, model names, a client's system prompt):
    their redactions are remembered, a bounded number of them."""

    MEMO_MAX_CHARS = 2048
    MEMO_ENTRIES = 2048

    def __init__(self, text_redactor: TextRedactor | None = None, *, names: bool = False) -> None:
        self._text = text_redactor or _guard_redactor() or regex_redact
        #: Content redaction may run the named-entity model (slow: keep it off the event loop). The
        #: model is loaded when content is first redacted, not before.
        self.names = names
        self._content: TextRedactor | None = None
        self._memo: OrderedDict[tuple[bool, str], str] = OrderedDict()

    def text(self, value: str) -> str:
        return self._memoized(value, False)

    def content(self, value: str) -> str:
        return self._memoized(value, self.names)

    def _memoized(self, value: str, names: bool) -> str:
        if not value:
            return value
        redactor = self._text if not names else self._content or self._names_redactor()
        if len(value) > self.MEMO_MAX_CHARS:
            return redactor(value)
        memo = self._memo
        key = (names, value)
        done = memo.get(key)
        if done is None:
            done = memo[key] = redactor(value)
            if len(memo) > self.MEMO_ENTRIES:
                memo.popitem(last=False)
        else:
            memo.move_to_end(key)
        return done

    def _names_redactor(self) -> TextRedactor:
        self._content = _names_redactor() or self._text
        if self._content is self._text:
            self.names = False  # not installed or failed its self-check: logged once, not retried
        return self._content

    def messages(self, value: Any) -> Any:
        """Chat messages (OpenAI shape), embedding input (a string or list of strings), or anything."""
        return self._walk(value, False)

    def content_messages(self, value: Any) -> Any:
        """``messages`` with the content redaction (named entities too, when on)."""
        return self._walk(value, self.names)

    def _walk(self, value: Any, names: bool) -> Any:
        if isinstance(value, str):
            return self._memoized(value, names)
        if isinstance(value, list):
            return [self._walk(item, names) for item in value]
        if isinstance(value, dict):
            out = dict(value)
            for name in ("content", "text", "arguments", "input"):
                if name in out:
                    out[name] = self._walk(out[name], names)
            for name in ("tool_calls", "function", "function_call"):
                if name in out:
                    out[name] = self._walk(out[name], names)
            return out
        return value
