"""Find encoded or disguised payloads and decode them so the injection rules can read them.

Handled: base64 (standard and URL-safe), hex (bare, spaced, ``\\x41``, ``0x41``), binary octets,
percent-encoding, ``\\u0041`` escapes, HTML character references, rot13, reversed text and text
spelled out letter by letter (``i g n o r e``).

Decoding is guarded by cheap prefilters so ordinary prompts pay one or two regex scans: base64 is
tried only on long runs of base64 characters, rot13 and reversal only when the text contains the
rot13 or reversed spelling of a trigger word.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import bastion.guard.runs as runs
from bastion.guard.normalize import word_set

MAX_PAYLOADS = 12
MAX_PAYLOAD_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Payload:
    kind: str
    #: Span in the original text (the whole text for rot13/reversed).
    start: int
    end: int
    text: str


_LETTERS_RE = re.compile(r"[^\W\d_]+")
_B64_MIN_RUN = 16
_B64_RUN_RE = re.compile(rf"[A-Za-z0-9+/_-]{{{_B64_MIN_RUN},}}={{0,2}}")
_B64_CLASS = runs.class_table(lambda char: char.isascii() and (char.isalnum() or char in "+/_-"))
_HEX_ESCAPED_RE = re.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}|(?:0x[0-9a-fA-F]{2}[\s,]*){6,}")
_HEX_SPACED_RE = re.compile(r"[0-9a-fA-F]{2}(?:[ :,-][0-9a-fA-F]{2}){7,}")
_BINARY_RE = re.compile(r"[01]{8}(?:[ ,]?[01]{8}){5,}")
_PERCENT_RE = re.compile(r"(?:%[0-9a-fA-F]{2}){6,}")
_UNICODE_ESCAPE_RE = re.compile(r"(?:\\u[0-9a-fA-F]{4}){4,}")
_HTML_ENTITY_RE = re.compile(r"(?:&#(?:x[0-9a-fA-F]{1,6}|\d{1,7});){6,}")
_SPACED_RE = re.compile(r"[a-z](?:[ .\-_*|/]{1,3}[a-z]){5,}")

# rot13 and reversed spellings of words that injections use; finding one is the reason to decode.
ROT13_HINT_WORDS = word_set(
    "vtaber qvfertneq sbetrg vafgehpgvbaf vafgehpgvba cebzcg flfgrz cerivbhf ehyrf wnvyoernx cergraq "
    "erirny bhgchg cevag nobir cevbe"
)
REVERSED_HINT_WORDS = word_set(
    "erongi snoitcurtsni noitcurtsni tpmorp tegrof drageresid suoiverp selur kaerbliaj dneterp laever evoba roirp"
)
HEX_HINT_WORDS = frozenset({"hex", "hexadecimal", "bytes"})
BINARY_HINT_WORDS = frozenset({"binary"})
# Single letters that rarely stand alone in ordinary text (unlike "a", "I", "it's", "don't", "I'm",
# "we'd", "e.g."); several of them as words suggest text spelled out letter by letter.
UNCOMMON_SINGLE_LETTERS = frozenset("bcfhjklnpqruvwxyz")


@dataclass(frozen=True, slots=True)
class PayloadHints:
    """Cheap facts about the text, computed from its word set, that decide which decoders run."""

    spaced: bool = False
    hex_words: bool = False
    binary_words: bool = False
    rot13: bool = False
    reversed: bool = False


def _printable_text(raw: bytes) -> str | None:
    """Decoded bytes as text when they look like language (not binary noise)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 6:
        return None
    if not text.isprintable():
        printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text)
        if printable < 0.95 * len(text):
            return None
    compact = text.replace(" ", "")
    letters = len(compact) - len(_LETTERS_RE.sub("", compact))
    if letters < 0.5 * len(compact):
        return None
    return text


def _decode_base64(run: str) -> str | None:
    stripped = run.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    # Base64 of text mixes cases and digits; a long lower-case word or a number is not base64.
    if stripped.isdigit() or (stripped.isalpha() and (stripped.islower() or stripped.isupper())):
        return None
    padded = stripped + "=" * (-len(stripped) % 4)
    altchars = b"-_" if ("-" in run or "_" in run) else None
    try:
        raw = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable_text(raw)


def _decode_hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[\s,:-]", "", run)
    if len(digits) % 2:
        return None
    try:
        return _printable_text(bytes.fromhex(digits))
    except ValueError:
        return None


def find_payloads(original: str, view: str, hints: PayloadHints) -> list[Payload]:
    """Encoded payloads in ``original``; rot13/reversed/spaced ones are found in the folded ``view``.

    Spans of ``spaced`` payloads are offsets into ``view``.
    """
    payloads: list[Payload] = []
    for match in _base64_runs(original):
        if len(payloads) >= MAX_PAYLOADS:
            break
        run = match.group()[:MAX_PAYLOAD_CHARS]
        is_hex = len(run) % 2 == 0 and not run.strip("0123456789abcdefABCDEF")
        decoded = _decode_hex(run) if is_hex else None
        kind = "hex"
        if decoded is None:
            decoded, kind = _decode_base64(run), "base64"
        if decoded:
            payloads.append(Payload(kind, match.start(), match.end(), decoded))
    if "\\x" in original or "0x" in original:
        payloads.extend(_decoded_runs(_HEX_ESCAPED_RE, original, "hex", _decode_hex))
    if hints.hex_words:
        payloads.extend(_decoded_runs(_HEX_SPACED_RE, original, "hex", _decode_hex))
    if hints.binary_words or original.count("0") + original.count("1") >= 48:
        payloads.extend(_decoded_runs(_BINARY_RE, original, "binary", _decode_binary))
    if "%" in original:
        payloads.extend(_decoded_runs(_PERCENT_RE, original, "percent", unquote))
    if "\\u" in original:
        payloads.extend(
            _decoded_runs(_UNICODE_ESCAPE_RE, original, "unicode_escape", lambda s: codecs.decode(s, "unicode_escape"))
        )
    if "&#" in original:
        payloads.extend(_decoded_runs(_HTML_ENTITY_RE, original, "html_entities", html.unescape))
    if hints.rot13:
        payloads.append(Payload("rot13", 0, len(original), codecs.encode(view, "rot13")))
    if hints.reversed:
        payloads.append(Payload("reversed", 0, len(original), view[::-1]))
    if hints.spaced:
        for match in _SPACED_RE.finditer(view):
            letters = re.sub(r"[^a-z]", "", match.group())
            payloads.append(Payload("spaced", match.start(), match.end(), letters))
    return payloads[:MAX_PAYLOADS]


def _base64_runs(original: str) -> Iterator[re.Match[str]]:
    """``_B64_RUN_RE.finditer(original)``, without walking the regex over the whole text.

    A byte scan (``runs``) finds where the runs of at least 16 base64 characters start, usually
    nowhere, and the regex only matches there: every match of the pattern starts where such a run
    starts and takes the whole run (plus up to two ``=``, which end a run), so the next match
    starts at the next run."""
    for start in runs.run_starts(original, _B64_CLASS, _B64_MIN_RUN):
        match = _B64_RUN_RE.match(original, start)
        if match is not None:  # always, by the above
            yield match


def _decode_binary(run: str) -> str | None:
    bits = re.sub(r"[ ,]", "", run)
    return _printable_text(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def _decoded_runs(
    pattern: re.Pattern[str], original: str, kind: str, decode: Callable[[str], str | None]
) -> list[Payload]:
    found = []
    for match in pattern.finditer(original):
        decoded = decode(match.group()[:MAX_PAYLOAD_CHARS])
        if decoded:
            found.append(Payload(kind, match.start(), match.end(), decoded))
    return found
