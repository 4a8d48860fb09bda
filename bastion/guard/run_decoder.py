"""Encoded runs in text that arrives in pieces: found, decoded, and handed on as text.

The leak scanner (``leak_copies``) reads what a model wrote in base64, hex or another byte encoding
through this. Decoded: base64 (standard and URL-safe, padded or not, at any of the four alignments,
so a line-wrapped block or a run glued to a word still decodes), hex (bare, spaced, ``\\x41``,
``0x41``), binary octets, decimal character codes, ``\\u0041`` escapes, HTML character references,
and percent-encoding (also when only the spaces and punctuation are encoded, as URL quoting does).

Cost: each piece of text is mapped to a character-class string with one ``bytes.translate`` and
searched for a long run with ``bytes.find``, both in C; ordinary prose has no run of sixteen base64
characters or hex digits and costs nothing more. The run in progress at the end of a piece is carried
to the next one (decoded for good up to its last few characters once it is long), so every character
is examined a bounded number of times whatever the split; it is also decoded tentatively as it
stands, so a stream guard that releases the piece has read all of it.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

#: Shortest run worth decoding: 16 base64 characters are 12 bytes, about two words.
MIN_RUN = 16
#: A run still growing at the end of a piece is decoded for good once it is longer than this, but
#: for its last ``_KEEP_CHARS``, so the carry (rescanned with the next piece) stays bounded.
COMMIT_CHARS = 128
_KEEP_CHARS = 32

#: ``emit(kind, text, tentative)``: kind is ``base64``, ``hex`` or ``other``. A tentative text is the
#: decoding of a run still in progress: it is emitted again, longer, with the next piece (the
#: receiver must not take it as continuing the stream), so what went out is always read.
Emit = Callable[[str, str, bool], None]
_Handler = Callable[[str, bool], None]


def _class_table(members: bytes) -> bytes:
    return bytes(ord("x") if c in members else ord(".") for c in range(256))


# Line breaks included: a wrapped block is one run, whatever the width (prose lines end in punctuation
# or spaces often enough not to glue into long runs, and a glued word only adds noise at one end).
_B64_CLASSES = _class_table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=\r\n")
# Hex digits, the prefixes and separators of the textual byte encodings, and the space.
_NUMERIC_CLASSES = _class_table(b"0123456789abcdefABCDEFxXuU\\%&#;,: -")
_NEEDLE = b"x" * MIN_RUN
_HEX_RUN_RE = re.compile(r"[0-9a-fA-F]{16,}")
_URLSAFE = str.maketrans("-_", "+/")
# Bytes that never occur in text (C0 controls other than tab, newline and carriage return).
_NOT_CONTROL = bytes(c for c in range(256) if not (c < 32 and c not in (9, 10, 13)) and c != 127)

_NUMERIC_RE = re.compile(
    r"(?P<binary>[01]{8}(?:[ ,]?[01]{8}){5,})"
    # Numbers only: decimal character codes, or hex pairs that happen to have no letter (both tried).
    # Each ends on a whole code: "... 20 4" must not take the 4 of "4D" (or "11" of "117").
    r"|(?P<digits>\d{1,3}(?:[ ,;]{1,2}\d{1,3}){7,}(?![0-9a-fA-F]))"
    r"|(?P<hex>[0-9a-fA-F]{2}(?:[ ,:;-]{1,2}[0-9a-fA-F]{2}){7,}(?![0-9a-fA-F]))"
    r"|(?P<escaped>(?:(?:\\x|0x)[0-9a-fA-F]{2}[ ,]*){6,})"
    r"|(?P<unicode>(?:\\u[0-9a-fA-F]{4}){4,})"
    r"|(?P<html>(?:&#(?:x[0-9a-fA-F]{1,6}|\d{1,7});){6,})"
)
_NUMBER_RE = re.compile(r"\d+")
_NOT_HEX_RE = re.compile(r"\\x|0x|[^0-9a-fA-F]")
_PERCENT_ESCAPE_RE = re.compile(r"%[0-9a-fA-F]{2}")


class RunDecoder:
    """Feed text in order; decoded runs are passed to ``emit`` as they complete. ``finish()`` at the end."""

    __slots__ = ("_b64_carry", "_emit", "_numeric_carry", "_percent_carry")

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._b64_carry = ""
        self._numeric_carry = ""
        self._percent_carry = ""

    def feed(self, text: str) -> None:
        self._b64_carry = _scan(self._b64_carry + text, _B64_CLASSES, self._b64_run, _quad_cut, final=False)
        self._numeric_carry = _scan(
            self._numeric_carry + text, _NUMERIC_CLASSES, self._numeric_run, _separator_cut, final=False
        )
        if "%" in text or self._percent_carry:
            self._percent(self._percent_carry + text, final=False)

    def finish(self) -> None:
        self._b64_carry = _scan(self._b64_carry, _B64_CLASSES, self._b64_run, _quad_cut, final=True)
        self._numeric_carry = _scan(
            self._numeric_carry, _NUMERIC_CLASSES, self._numeric_run, _separator_cut, final=True
        )
        if self._percent_carry:
            self._percent(self._percent_carry, final=True)

    def _percent(self, text: str, *, final: bool) -> None:
        """Percent-encoded text, escapes mixed with plain letters (``You%20are%20Mira%2C``)."""
        split = -1 if final else text.rfind("%", len(text) - 2)  # an escape cut by the piece's end
        self._percent_carry = text[split:] if split >= 0 else ""
        text = text[:split] if split >= 0 else text
        if len(_PERCENT_ESCAPE_RE.findall(text)) >= 3:
            decoded = _as_text(unquote_to_bytes(text))
            if decoded:
                self._emit("other", decoded, False)

    def _b64_run(self, run: str, tentative: bool) -> None:
        body = run.replace("\n", "").replace("\r", "").rstrip("=")
        if len(body) < MIN_RUN:
            return
        decoded: dict[str, list[str]] = {}
        for match in _HEX_RUN_RE.finditer(body):  # bare hex, maybe glued to a word or line
            hexits = match.group()
            _collect(decoded, "hex", _hex_text(hexits) or _hex_text(hexits[1:]))
        # A long word or a number is not base64: base64 of text mixes cases and digits.
        if not (body.isdigit() or (body.isalpha() and (body.islower() or body.isupper()))):
            _collect(decoded, "base64", _base64_text(body))
        self._emit_all(decoded, tentative)

    def _numeric_run(self, run: str, tentative: bool) -> None:
        decoded: dict[str, list[str]] = {}
        for match in _NUMERIC_RE.finditer(run):
            kind = match.lastgroup or ""
            value = match.group()
            if kind == "digits":  # "72 101 108" (decimal) or "59 20 61" (hex pairs): read both ways
                _collect(decoded, "other", _decimal_text(value))
                if all(len(group) == 2 for group in _NUMBER_RE.findall(value)):
                    _collect(decoded, "hex", _hex_text(value))
            else:
                _collect(decoded, "hex" if kind in ("hex", "escaped") else "other", _NUMERIC_DECODERS[kind](value))
        self._emit_all(decoded, tentative)

    def _emit_all(self, decoded: dict[str, list[str]], tentative: bool) -> None:
        # One text per kind: a tentative text must be whole (the receiver forgets it before the next).
        for kind, pieces in decoded.items():
            self._emit(kind, "".join(pieces), tentative)


def _collect(decoded: dict[str, list[str]], kind: str, text: str | None) -> None:
    if text:
        decoded.setdefault(kind, []).append(text)


def _scan(text: str, classes_table: bytes, handle: _Handler, cut_at: Callable[[str], int], *, final: bool) -> str:
    """Hand every complete run of at least ``MIN_RUN`` class characters to ``handle`` and return the
    carry: the run at the end, which may still grow. It is handed over for good up to ``cut_at`` once
    long, and tentatively as a whole."""
    if not text:
        return ""
    classes = text.encode("ascii", "replace").translate(classes_table)  # one byte per character
    limit = len(classes) if final else classes.rfind(b".") + 1
    position = classes.find(_NEEDLE, 0, limit)
    while position >= 0:
        end = classes.find(b".", position, limit)
        end = limit if end < 0 else end
        handle(text[classes.rfind(b".", 0, position) + 1 : end], False)
        position = classes.find(_NEEDLE, end, limit)
    carry = text[limit:]
    if len(carry) > COMMIT_CHARS:
        cut = cut_at(carry)
        handle(carry[:cut], False)
        carry = carry[cut:]
    if len(carry) >= MIN_RUN:
        handle(carry, True)
    return carry


def _quad_cut(run: str) -> int:
    """Where to split a long base64 (or bare hex) run: a multiple of four keeps quads and pairs whole
    (line breaks do not count)."""
    cut = len(run) - _KEEP_CHARS
    return cut - (cut - run.count("\n", 0, cut) - run.count("\r", 0, cut)) % 4


def _separator_cut(run: str) -> int:
    """Where to split a long run of textual byte codes: before a separator, so no code is cut."""
    limit = len(run) - _KEEP_CHARS
    cut = max(run.rfind(" ", 0, limit), run.rfind(",", 0, limit), run.rfind("\\", 0, limit), run.rfind("&", 0, limit))
    return cut if cut > 0 else _quad_cut(run)


def _as_text(raw: bytes) -> str | None:
    """Decoded bytes as text, or None when they are binary noise (a wrong guess at the encoding)."""
    if len(raw) < 6 or len(raw.translate(None, _NOT_CONTROL)) * 20 > len(raw):
        return None
    if raw.isascii():
        return raw.decode("ascii")
    text = raw.decode("utf-8", "ignore")
    # Noise is mostly invalid UTF-8; a piece cut inside a character loses only that character.
    return text if len(text.encode("utf-8")) * 10 >= len(raw) * 9 else None


def _base64_text(body: str) -> str | None:
    body = body.replace("=", "").translate(_URLSAFE)
    for offset in range(4):  # the run may start inside a quad (a wrapped line, a glued word)
        piece = body[offset:]
        extra = len(piece) % 4
        if extra == 1:
            piece = piece[:-1]
        elif extra:
            piece += "=" * (4 - extra)
        try:
            decoded = _as_text(base64.b64decode(piece, validate=True))
        except (binascii.Error, ValueError):
            continue
        if decoded:
            return decoded
    return None


def _hex_text(value: str) -> str | None:
    digits = _NOT_HEX_RE.sub("", value)
    try:
        return _as_text(bytes.fromhex(digits[: len(digits) - len(digits) % 2]))
    except ValueError:
        return None


def _binary_text(value: str) -> str | None:
    bits = re.sub(r"[ ,]", "", value)
    bits = bits[: len(bits) - len(bits) % 8]
    return _as_text(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def _decimal_text(value: str) -> str | None:
    codes = [int(code) for code in _NUMBER_RE.findall(value)]
    text = "".join(chr(code) for code in codes if code >= 32 or code in (9, 10, 13))
    return text if len(text) * 10 >= len(codes) * 9 else None  # a few stray numbers are dropped


def _unicode_text(value: str) -> str | None:
    return "".join(chr(int(code, 16)) for code in re.findall(r"\\u([0-9a-fA-F]{4})", value))


_NUMERIC_DECODERS: dict[str, Callable[[str], str | None]] = {
    "hex": _hex_text,
    "escaped": _hex_text,
    "binary": _binary_text,
    "unicode": _unicode_text,
    "html": html.unescape,
}
