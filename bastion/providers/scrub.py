"""Credential removal for text that came from an upstream and may go to a caller or a log.

An upstream that refuses a call often quotes what it was sent: the deployment's own key, in full,
masked (``sk-proj-****wxyz``), percent-, hex- or base64-encoded (inside a ``Basic`` header), or
as a bare prefix or suffix. ``CredentialScrubber`` removes

- the deployment's own credentials in any of those forms: the whole token around any 12
  consecutive characters of a key or around one of its encodings, and tokens that are a key's
  prefix or suffix (6 characters, or 4 next to a mask such as ``****`` or ``...``);
- anything shaped like a credential, whoever it belongs to: ``sk-`` / ``sk-ant-`` keys,
  ``Bearer`` / ``Basic`` values, ``x-api-key: ...`` / ``token=...`` style pairs, AWS and Google
  keys, JWTs, private keys, passwords in URLs, long hex and base64 strings, and the vendor
  formats the guard's secret detector knows (GitHub, Slack, Stripe, Hugging Face, ...).

Each is replaced by ``[REDACTED]``. Over-redaction is the accepted failure: the text is an error
message, and losing a word of it costs less than relaying a key.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from bastion.guard.secrets import SecretDetector

REDACTED = "[REDACTED]"
#: Any run of this many characters of a key is the key (shorter keys count only whole).
KEY_WINDOW = 12
#: A whole token that is a key's prefix or suffix this long is part of the key ...
MIN_KEY_FRAGMENT = 6
#: ... or this long, when a mask in the same token says that the rest was hidden.
MIN_MASKED_FRAGMENT = 4
#: Shorter configured values are too common a string to hunt for.
MIN_SECRET = 4

#: A credential is part of a token: text between blanks, quotes and brackets.
_TOKEN_CHAR = re.compile(r"[^\s\"'`<>()\[\]{},;]")
_TOKEN = re.compile(r"[^\s\"'`<>()\[\]{},;]+")
#: How an upstream shows that it hid part of a key.
_MASK = re.compile(r"\*{2,}|\.{3,}|…|•+|x{4,}|X{4,}")

_NAMES = (
    r"x[-_]api[-_]?key|api[-_ ]?key|apikey|authorization|proxy[-_]authorization|access[-_]?token|"
    r"auth[-_]?token|refresh[-_]?token|id[-_]?token|session[-_]?token|client[-_]?secret|secret[-_]?key|"
    r"private[-_]?key|password|passwd|secret|token|credentials?"
)


def _mixed_classes(value: str) -> bool:
    """Letters and digits together, as generated secrets are (words and paths are not)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


#: (pattern, check): the named group ``s`` is the credential; the rest of a match is kept.
_SHAPES: tuple[tuple[re.Pattern[str], Callable[[str], bool] | None], ...] = (
    (re.compile(r"(?P<s>-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z))"), None),
    (re.compile(r"(?i)\b(?:bearer|basic)\s+(?P<s>[A-Za-z0-9._~+/=:*…-]{4,})"), None),
    (
        re.compile(
            r"(?i)\b(?:" + _NAMES + r")[\"']?\s*(?:[:=]|=>)\s*[\"']?(?:(?:bearer|basic)\s+)?(?P<s>[^\s\"'`,;}\]]{4,})"
        ),
        None,
    ),
    (re.compile(r"(?<![A-Za-z0-9])(?P<s>(?:sk|rk)[-_][A-Za-z0-9_*.…-]{3,})"), None),
    (re.compile(r"(?<![A-Z0-9])(?P<s>(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16})(?![A-Z0-9])"), None),
    (re.compile(r"(?P<s>AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{10,}|GOCSPX-[0-9A-Za-z_-]{10,})"), None),
    (re.compile(r"(?P<s>eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"), None),
    (re.compile(r"://[^\s/@:\"']*:(?P<s>[^\s/@\"']+)@"), None),
    (re.compile(r"(?<![0-9A-Za-z])(?P<s>[0-9a-fA-F]{32,})(?![0-9A-Za-z])"), None),
    (re.compile(r"(?<![A-Za-z0-9+/_-])(?P<s>[A-Za-z0-9+/_-]{32,}={0,2})(?![A-Za-z0-9+/=_-])"), _mixed_classes),
)


@functools.cache
def _vendor_detector() -> SecretDetector:
    # Imported on first use: the guard package takes half a second to import, and only a failing
    # upstream call needs it.
    from bastion.guard.secrets import SecretDetector

    return SecretDetector()


def encoded_forms(secret: str) -> set[str]:
    """How ``secret`` may appear in text that quotes it: as is, JSON-, percent- and hex-encoded,
    and the stable middle of its base64 (standard and URL-safe) at each of the three byte
    alignments, so it is found inside a longer encoded value such as ``Basic base64(user:key)``."""
    raw = secret.encode()
    forms = {secret, secret.replace("/", "\\/"), quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= {raw.hex(), raw.hex().upper()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode()
            # The first group mixes in the unknown bytes before, the last one those after.
            whole_groups = (offset + len(raw)) // 3
            core = encoded[4 if offset else 0 : whole_groups * 4]
            if len(core) >= 8:
                forms.add(core)
    return {form for form in forms if len(form) >= MIN_SECRET}


class CredentialScrubber:
    """Removes credentials from text; knows the deployment's own. Build once; thread-safe."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = tuple(dict.fromkeys(s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET))
        #: The secrets' runs without blanks (``Bearer <key>`` -> the key): parts and fragments of
        #: these are looked for, so that a window never spans a blank into the words around it.
        self.keys = tuple(dict.fromkeys(run for s in self.secrets for run in s.split() if len(run) >= KEY_WINDOW))
        needles: set[str] = set()
        for secret in self.secrets:
            needles |= encoded_forms(secret)
        for key in self.keys:
            needles |= encoded_forms(key)
            needles |= {key[i : i + KEY_WINDOW] for i in range(len(key) - KEY_WINDOW + 1)}
        # Longest first: a whole key is found before its windows (the spans merge anyway).
        self._needles = sorted(needles, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every credential replaced by ``[REDACTED]``."""
        if not text:
            return text
        spans: list[tuple[int, int]] = []
        if self.secrets:
            self._own_spans(text, spans)
        _shape_spans(text, spans)
        spans.extend((f.start, f.end) for f in _vendor_detector().scan(text))
        return _replace(text, spans)

    def _own_spans(self, text: str, spans: list[tuple[int, int]]) -> None:
        for needle in self._needles:
            start = text.find(needle)
            while start != -1:
                spans.append(_token_around(text, start, start + len(needle)))
                start = text.find(needle, start + 1)
        for match in _TOKEN.finditer(text):
            if self._is_fragment(match.group().strip(".:!?")):
                spans.append(match.span())

    def _is_fragment(self, token: str) -> bool:
        """A prefix or suffix of one of the deployment's secrets, bare or next to a mask."""
        parts = [part for part in _MASK.split(token) if part]
        minimum = MIN_MASKED_FRAGMENT if _MASK.search(token) else MIN_KEY_FRAGMENT
        return any(
            len(part) >= minimum and (key.startswith(part) or key.endswith(part)) for part in parts for key in self.keys
        )


def _token_around(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHAR.match(text, start - 1):
        start -= 1
    while end < len(text) and _TOKEN_CHAR.match(text, end):
        end += 1
    return start, end


def _shape_spans(text: str, spans: list[tuple[int, int]]) -> None:
    for pattern, check in _SHAPES:
        for match in pattern.finditer(text):
            value = match.group("s")
            if value.startswith(REDACTED) or (check is not None and not check(value)):
                continue
            spans.append(match.span("s"))


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    position = 0
    for start, end in merged:
        out += (text[position:start], REDACTED)
        position = end
    out.append(text[position:])
    return "".join(out)


#: Generic shapes only, for text that no particular deployment's key could be in.
NO_KNOWN_SECRETS = CredentialScrubber()
