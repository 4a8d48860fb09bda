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
from collections.abc import Callable, Iterable, Iterator
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
_BLOCK = KEY_WINDOW // 2

#: A credential is part of a token: text between blanks, quotes and brackets.
_TOKEN_CHAR = re.compile(r"[^\s\"'`<>()\[\]{},;]")
#: How an upstream shows that it hid part of a key.
_MASK = re.compile(r"\*{2,}|\.{3,}|…|•+|x{4,}|X{4,}")

_NAMES = (
    r"x[-_]api[-_]?key|api[-_ ]?key|apikey|authorization|proxy[-_]authorization|access[-_]?token|"
    r"auth[-_]?token|refresh[-_]?token|id[-_]?token|session[-_]?token|client[-_]?secret|secret[-_]?key|"
    r"private[-_]?key|password|passwd|secret|token|credentials?"
)


def _generated(value: str) -> bool:
    """Letters and digits together, as generated secrets are (words and paths are not)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


#: (pattern, hints, check): the named group ``s`` is the credential, the rest of a match is kept;
#: a pattern runs only on text holding one of its (lower-case) hints, as most error messages hold none.
_SHAPES: tuple[tuple[re.Pattern[str], tuple[str, ...], Callable[[str], bool] | None], ...] = (
    (
        re.compile(r"(?P<s>-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z))"),
        ("private key",),
        None,
    ),
    (re.compile(r"(?i)\b(?:bearer|basic)\s+(?P<s>[A-Za-z0-9._~+/=:*…-]{4,})"), ("bearer", "basic"), None),
    (
        re.compile(
            r"(?i)\b(?:" + _NAMES + r")[\"']?\s*(?:[:=]|=>)\s*[\"']?(?:(?:bearer|basic)\s+)?(?P<s>[^\s\"'`,;}\]]{4,})"
        ),
        ("key", "auth", "token", "secret", "passw", "credential"),
        None,
    ),
    (re.compile(r"(?<![A-Za-z0-9])(?P<s>(?:sk|rk)[-_][A-Za-z0-9_*.…-]{3,})"), ("sk-", "sk_", "rk-", "rk_"), None),
    (
        re.compile(r"(?<![A-Z0-9])(?P<s>(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16})(?![A-Z0-9])"),
        ("akia", "asia", "abia", "acca", "a3t"),
        None,
    ),
    (
        re.compile(r"(?P<s>AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{10,}|GOCSPX-[0-9A-Za-z_-]{10,})"),
        ("aiza", "ya29.", "gocspx-"),
        None,
    ),
    (re.compile(r"(?P<s>eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"), ("eyj",), None),
    (re.compile(r"://[^\s/@:\"']*:(?P<s>[^\s/@\"']+)@"), ("://",), None),
    # Long hex and base64 runs (a run's first match is its start, so no look-behind is needed).
    (re.compile(r"(?P<s>[A-Za-z0-9+/_-]{32,}={0,2})"), (), _generated),
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
        #: these are looked for, so that a match never spans a blank into the words around it.
        self.keys = tuple(dict.fromkeys(run for s in self.secrets for run in s.split() if len(run) >= KEY_WINDOW))
        forms: set[str] = set()
        for value in (*self.secrets, *self.keys):
            forms |= encoded_forms(value)
        self._forms = tuple(forms)
        # Any KEY_WINDOW consecutive characters of a key contain one of its blocks of half that
        # length at a multiple of it: find the blocks (in C), then grow each match along the key.
        self._blocks = tuple(
            (key[i : i + _BLOCK], key, i) for key in self.keys for i in range(0, len(key) - _BLOCK + 1, _BLOCK)
        )
        # A masked or bare prefix or suffix contains the key's first or last characters.
        self._ends = tuple(
            {end for key in self.keys for end in (key[:MIN_MASKED_FRAGMENT], key[-MIN_MASKED_FRAGMENT:])}
        )

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
        for form in self._forms:
            for start in _occurrences(text, form):
                spans.append(_token_around(text, start, start + len(form)))
        for block, key, offset in self._blocks:
            for start in _occurrences(text, block):
                begin, at = start, offset
                while begin > 0 and at > 0 and text[begin - 1] == key[at - 1]:
                    begin, at = begin - 1, at - 1
                end, at = start + _BLOCK, offset + _BLOCK
                while end < len(text) and at < len(key) and text[end] == key[at]:
                    end, at = end + 1, at + 1
                if end - begin >= KEY_WINDOW:
                    spans.append(_token_around(text, begin, end))
        for piece in self._ends:
            for start in _occurrences(text, piece):
                begin, end = _token_around(text, start, start + len(piece))
                if self._is_fragment(text[begin:end].strip(".:!?")):
                    spans.append((begin, end))

    def _is_fragment(self, token: str) -> bool:
        """A prefix or suffix of one of the deployment's keys, bare or next to a mask."""
        masked = _MASK.search(token) is not None
        parts = [part for part in _MASK.split(token) if part] if masked else [token]
        minimum = MIN_MASKED_FRAGMENT if masked else MIN_KEY_FRAGMENT
        return any(
            len(part) >= minimum and (key.startswith(part) or key.endswith(part)) for part in parts for key in self.keys
        )


def _occurrences(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start != -1:
        yield start
        start = text.find(needle, start + 1)


def _token_around(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHAR.match(text, start - 1):
        start -= 1
    while end < len(text) and _TOKEN_CHAR.match(text, end):
        end += 1
    return start, end


def _shape_spans(text: str, spans: list[tuple[int, int]]) -> None:
    lowered = text.lower()
    for pattern, hints, check in _SHAPES:
        if hints and not any(hint in lowered for hint in hints):
            continue
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
