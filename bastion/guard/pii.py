"""PII detection with Presidio's entity names and validated, precision-first recognizers.

Structured identifiers are confirmed by their check digits or structure (Luhn for cards, mod-97
for IBANs, the SSA's rules for SSNs, octet ranges for IPv4, ``ipaddress`` for IPv6, base58check or
bech32 for Bitcoin). Formats with no check digit (phone numbers, licences, passports, dates of birth,
ages) need either an unambiguous format or a context word nearby (``pii_context``).

Speed: every recognizer except e-mail and URL matches text containing a digit, so one cheap scan
finds the digit clusters and the recognizers run only on short windows around them; the window's
longest digit run decides which recognizers can match at all (a card needs 12 digits). Patterns
start with a digit so the regex engine can skip ahead; word-boundary checks are done in code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

import bastion.guard.budget as budget
import bastion.guard.pii_context as pii_context
from bastion.guard.checksums import (
    IBAN_LENGTHS,
    base58check_valid,
    bech32_valid,
    card_prefix_plausible,
    iban_valid,
    luhn_valid,
    ssn_valid,
)
from bastion.guard.models import Finding
from bastion.guard.segments import SEGMENT_CHARS, segment_bounds
from bastion.guard.spans import drop_overlapping, keep_disjoint

# Overlaps are resolved in favour of the more specific type (validated ones first).
_PRIORITY: dict[str, int] = {
    "CREDIT_CARD": 100,
    "IBAN_CODE": 95,
    "CRYPTO": 92,
    "US_SSN": 90,
    "EMAIL_ADDRESS": 88,
    "IP_ADDRESS": 85,
    "MAC_ADDRESS": 84,
    "DOMAIN_NAME": 80,
    "US_DRIVER_LICENSE": 75,
    "US_PASSPORT": 74,
    "DATE_TIME": 70,
    "PHONE_NUMBER": 60,
    "AGE": 50,
}

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)
# RFC 2606 / 6761 names: documentation examples, never a person.
_RESERVED_DOMAIN_RE = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$", re.I)
_URL_RE = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+", re.I)

_CARD_RE = re.compile(
    r"[0-9](?:[0-9]{3}[ -][0-9]{4}[ -][0-9]{4}[ -][0-9]{1,7}|[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5}|[0-9]{11,18})"
)
# IBAN from its check digits; the two country letters before them are checked in code.
_IBAN_BODY_RE = re.compile(r"[0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?")
_SSN_RE = re.compile(r"([0-9]{3})([- .]?)([0-9]{2})\2([0-9]{4})")
_SSN_CONTEXT_RE = re.compile(r"(?=[st])(?:ssn|social\s+security|sozialversicherung|tax\s*payer|\bsoc\.?\s*sec)", re.I)
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_VERSION_CONTEXT_RE = re.compile(r"(?:version|ver\.?|v|release|build)\s*$", re.I)
_MAC_RE = re.compile(r"(?<![\w:-])[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])")
_BTC_RE = re.compile(r"(?<![\w])(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71})(?![\w])")


def _left_ok(text: str, start: int, forbidden: str) -> bool:
    """The character before ``start`` is not a letter, digit or one of ``forbidden``."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in forbidden)


def _right_ok(text: str, end: int, forbidden: str) -> bool:
    """The text after ``end`` does not continue the number (digit, letter, or ``forbidden`` + digit)."""
    if end >= len(text):
        return True
    char = text[end]
    if char.isalnum():
        return False
    return not (char in forbidden and end + 1 < len(text) and text[end + 1].isdigit())


def _emails(text: str) -> Iterable[Finding]:
    # Search only around each "@": the local part is at most 64 characters, the domain at most 255.
    # Windows of nearby "@"s are merged first, so every character is searched once however many
    # "@"s surround it (a run of them would otherwise search each stretch hundreds of times).
    for window_start, window_end in _at_windows(text):
        for match in _EMAIL_RE.finditer(text, window_start, window_end):
            domain = match.group().rsplit("@", 1)[1]
            if not _RESERVED_DOMAIN_RE.search(domain):
                yield Finding("EMAIL_ADDRESS", match.start(), match.end(), 1.0)


def _at_windows(text: str) -> Iterable[tuple[int, int]]:
    length = len(text)
    at = text.find("@")
    while at >= 0:
        start, end = max(0, at - 65), min(length, at + 256)
        at = text.find("@", at + 1)
        while 0 <= at < end + 65:  # the next window touches this one: extend it
            end = min(length, at + 256)
            at = text.find("@", at + 1)
        yield start, end


def _urls(text: str) -> Iterable[Finding]:
    for match in _URL_RE.finditer(text):
        value = match.group().rstrip(".,;:!?)]}>'\"")
        yield Finding("DOMAIN_NAME", match.start(), match.start() + len(value), 0.9)


def _cards(text: str) -> Iterable[Finding]:
    for match in _CARD_RE.finditer(text):
        start, end = match.span()
        if not (_left_ok(text, start, ".-") and _right_ok(text, end, ".-")):
            continue
        digits = match.group().replace(" ", "").replace("-", "")
        if card_prefix_plausible(digits) and luhn_valid(digits):
            yield Finding("CREDIT_CARD", start, end, 1.0)


def _ibans(text: str) -> Iterable[Finding]:
    for match in _IBAN_BODY_RE.finditer(text):
        start = match.start() - 2
        if start < 0 or not (text[start].isalpha() and text[start + 1].isalpha()):
            continue
        if not _left_ok(text, start, ""):
            continue
        raw = text[start : match.end()]
        length = IBAN_LENGTHS.get(raw[:2].upper())
        compact = raw.replace(" ", "")
        if length is None or len(compact) < length:
            continue
        # The candidate may have swallowed a following word; cut it at the country's length.
        seen = 0
        end = match.end()
        for offset, char in enumerate(raw):
            if char != " ":
                seen += 1
            if seen == length:
                end = start + offset + 1
                break
        if end < len(text) and text[end].isalnum():
            continue
        if iban_valid(compact[:length]):
            yield Finding("IBAN_CODE", start, end, 1.0)


def _ssns(text: str) -> Iterable[Finding]:
    for match in _SSN_RE.finditer(text):
        start, end = match.span()
        if not (_left_ok(text, start, "-") and _right_ok(text, end, ".-")):
            continue
        area, separator, group, serial = match.groups()
        if not ssn_valid(area, group, serial):
            continue
        if separator != "-" and not _SSN_CONTEXT_RE.search(text, max(0, start - 40), start):
            continue  # spaced, dotted or bare nine digits are too common without context
        yield Finding("US_SSN", start, end, 1.0 if separator == "-" else 0.9)


def _ips(text: str) -> Iterable[Finding]:
    for match in _IPV4_RE.finditer(text):
        start, end = match.span()
        if not (_left_ok(text, start, ".") and _right_ok(text, end, ".")):
            continue
        if any((len(octet) > 1 and octet[0] == "0") or int(octet) > 255 for octet in match.group().split(".")):
            continue
        if _VERSION_CONTEXT_RE.search(text, max(0, start - 12), start):
            continue
        if _not_a_host(match.group()):
            continue
        yield Finding("IP_ADDRESS", start, end, 1.0)
    # A candidate needs "::" or seven colons (checked below), so a text with neither has none.
    if "::" not in text and text.count(":") < 7:
        return
    for match in _IPV6_RE.finditer(text):
        candidate = match.group()
        if len(candidate) < 3 or ("::" not in candidate and candidate.count(":") < 7):
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or address in _IPV6_DOCUMENTATION:
            continue
        yield Finding("IP_ADDRESS", match.start(), match.end(), 1.0)


# Addresses that identify no machine: loopback, unspecified, broadcast and the RFC 5737
# documentation ranges (the IP counterpart of example.com). Redacting them only breaks code samples.
_NOT_A_HOST_PREFIXES = ("127.", "0.", "192.0.2.", "198.51.100.", "203.0.113.")
_IPV6_DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")


def _not_a_host(address: str) -> bool:
    return address.startswith(_NOT_A_HOST_PREFIXES) or address == "255.255.255.255"


def _macs(text: str) -> Iterable[Finding]:
    for match in _MAC_RE.finditer(text):
        yield Finding("MAC_ADDRESS", match.start(), match.end(), 1.0)


def _crypto(text: str) -> Iterable[Finding]:
    for match in _BTC_RE.finditer(text):
        value = match.group()
        valid = bech32_valid(value) if value[:3].lower() == "bc1" else base58check_valid(value)
        if valid:
            yield Finding("CRYPTO", match.start(), match.end(), 1.0)


# Every numeric recognizer's match contains a digit cluster; recognizers run on windows around them.
_WINDOW_BEFORE = 64  # room for context words ("social security number is") and prefixes ("GB", "+")
_WINDOW_AFTER = 40


@dataclass(slots=True)
class _Window:
    start: int
    end: int
    #: Digits in the longest digit cluster, and dots in the most dotted one (IPv4 needs three).
    max_digits: int
    max_dots: int


_DROP_SEPARATORS = str.maketrans("", "", " ()./:+-")


def _windows(text: str) -> list[_Window]:
    """Merged windows around the digit clusters of ``text``."""
    # Runs once per digit cluster, so the loop keeps its state in locals.
    windows: list[_Window] = []
    length = len(text)
    window_start = window_end = -1
    max_digits = max_dots = 0
    for match in pii_context.CLUSTER_RE.finditer(text):
        cluster_start, cluster_end = match.span()
        if cluster_end - cluster_start == 1:
            digits, dots = 1, 0
        else:
            cluster = match.group()
            digits, dots = len(cluster.translate(_DROP_SEPARATORS)), cluster.count(".")
        start = cluster_start - _WINDOW_BEFORE
        if window_end >= 0 and start <= window_end:
            window_end = cluster_end + _WINDOW_AFTER
            if digits > max_digits:
                max_digits = digits
            if dots > max_dots:
                max_dots = dots
            continue
        if window_end >= 0:
            windows.append(_Window(max(0, window_start), min(length, window_end), max_digits, max_dots))
        window_start, window_end, max_digits, max_dots = start, cluster_end + _WINDOW_AFTER, digits, dots
    if window_end >= 0:
        windows.append(_Window(max(0, window_start), min(length, window_end), max_digits, max_dots))
    return windows


class PiiDetector:
    """Finds PII of the configured types. Build once; ``scan`` is thread-safe."""

    def __init__(self, entities: Iterable[str], *, all_dates: bool = False) -> None:
        self.entities = frozenset(entities)
        self.all_dates = all_dates

    def scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        if len(text) <= SEGMENT_CHARS:
            return _resolve(self._candidates(text))
        candidates: list[Finding] = []
        for start, end in segment_bounds(text):
            budget.check()
            candidates.extend(
                Finding(f.type, f.start + start, f.end + start, f.score) for f in self._candidates(text[start:end])
            )
        return _resolve(candidates)  # what two segments both found overlaps itself: kept once

    def _candidates(self, text: str) -> list[Finding]:
        entities = self.entities
        candidates: list[Finding] = []
        if "@" in text and "EMAIL_ADDRESS" in entities:
            candidates.extend(_emails(text))
        if "DOMAIN_NAME" in entities and ("://" in text or "www." in text or "WWW." in text):
            candidates.extend(_urls(text))
        if "DATE_TIME" in entities and self.all_dates:
            candidates.extend(pii_context.loose_dates(text))
        for window in _windows(text):
            chunk = text[window.start : window.end]
            for finding in self._scan_window(chunk, window):
                shifted = Finding(finding.type, finding.start + window.start, finding.end + window.start, finding.score)
                candidates.append(shifted)
        return candidates

    def _scan_window(self, text: str, window: _Window) -> list[Finding]:
        """Recognizers for entities that contain digits, on one window; the digit run decides which."""
        entities = self.entities
        digits = window.max_digits
        lowered = text.lower()
        found: list[Finding] = []
        if digits >= 12 and "CREDIT_CARD" in entities:
            found.extend(_cards(text))
        if digits >= 6 and "IBAN_CODE" in entities:
            found.extend(_ibans(text))
        if digits >= 9 and "US_SSN" in entities:
            found.extend(_ssns(text))
        if "IP_ADDRESS" in entities and (window.max_dots >= 3 or text.count(":") >= 2):
            found.extend(_ips(text))
        if "MAC_ADDRESS" in entities and (text.count(":") >= 5 or text.count("-") >= 5):
            found.extend(_macs(text))
        if "CRYPTO" in entities and ("bc1" in lowered or max(map(len, text.split()), default=0) >= 26):
            found.extend(_crypto(text))
        if ("US_DRIVER_LICENSE" in entities or "US_PASSPORT" in entities) and (
            "licen" in lowered or " dl" in lowered or "passport" in lowered
        ):
            found.extend(f for f in pii_context.licences(text) if f.type in entities)
        if "AGE" in entities and pii_context.AGE_HINT_RE.search(lowered):
            found.extend(pii_context.ages(text))
        phones = list(pii_context.phones(text)) if digits >= 7 and "PHONE_NUMBER" in entities else []
        dates: list[Finding] = []
        if phones or self.all_dates or pii_context.DOB_CONTEXT_RE.search(lowered):
            dates = list(pii_context.dates(text, all_dates=self.all_dates))
        if "DATE_TIME" in entities:
            found.extend(f for f in dates if f.score >= 0.5)
        # A date is shaped like a phone number: it shadows a phone candidate even when not reported.
        found.extend(drop_overlapping(phones, dates))
        return found


def _resolve(candidates: list[Finding]) -> list[Finding]:
    """Drop candidates that overlap a higher-priority (or, on ties, longer) one; sort by position."""
    if len(candidates) <= 1:
        return candidates
    ordered = sorted(candidates, key=lambda f: (-_PRIORITY.get(f.type, 0), -(f.end - f.start), f.start))
    return keep_disjoint(ordered)
