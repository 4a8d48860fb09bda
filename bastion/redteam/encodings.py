"""Encoding and obfuscation schemes applied to attack payloads, and the decoders the canary judge
uses to find a secret an answer encoded. Pure functions of a string."""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Callable

_MORSE = {
    "A": ".-", "B": "-...", "C": "-.-.", "D": "-..", "E": ".", "F": "..-.", "G": "--.", "H": "....",
    "I": "..", "J": ".---", "K": "-.-", "L": ".-..", "M": "--", "N": "-.", "O": "---", "P": ".--.",
    "Q": "--.-", "R": ".-.", "S": "...", "T": "-", "U": "..-", "V": "...-", "W": ".--", "X": "-..-",
    "Y": "-.--", "Z": "--..", "0": "-----", "1": ".----", "2": "..---", "3": "...--", "4": "....-",
    "5": ".....", "6": "-....", "7": "--...", "8": "---..", "9": "----.", ".": ".-.-.-", ",": "--..--",
    "?": "..--..", "'": ".----.", "!": "-.-.--", "/": "-..-.", ":": "---...", "-": "-....-",
}  # fmt: skip
_MORSE_BACK = {code: char for char, code in _MORSE.items()}
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3",
                       "I": "1", "O": "0", "S": "5", "T": "7"})  # fmt: skip
#: Latin letters -> Cyrillic/Greek look-alikes (homoglyph smuggling).
_HOMOGLYPHS = str.maketrans({"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
                             "x": "\u0445", "y": "\u0443", "i": "\u0456", "A": "\u0391", "B": "\u0392",
                             "E": "\u0395", "H": "\u0397", "K": "\u039a", "M": "\u039c", "O": "\u039f",
                             "P": "\u03a1", "T": "\u03a4", "X": "\u03a7"})  # fmt: skip
_ZERO_WIDTH = "\u200b"
_TAG_BASE = 0xE0000


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def hexa(text: str) -> str:
    return text.encode().hex()


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def atbash(text: str) -> str:
    def flip(char: str) -> str:
        if "a" <= char <= "z":
            return chr(ord("z") - (ord(char) - ord("a")))
        if "A" <= char <= "Z":
            return chr(ord("Z") - (ord(char) - ord("A")))
        return char

    return "".join(flip(char) for char in text)


def morse(text: str) -> str:
    """Letters separated by spaces, words by `` / ``; characters without a code are dropped."""
    return " / ".join(" ".join(_MORSE[c] for c in word.upper() if c in _MORSE) for word in text.split())


def leetspeak(text: str) -> str:
    return text.translate(_LEET)


def unicode_tags(text: str) -> str:
    """ASCII smuggled as invisible Unicode tag characters (U+E0000 + code point), between a visible lead."""
    return "".join(chr(_TAG_BASE + ord(c)) if ord(c) < 0x80 else c for c in text)


def zero_width(text: str) -> str:
    """A zero-width space between every character: the text reads the same, string matches break."""
    return _ZERO_WIDTH.join(text)


def homoglyph(text: str) -> str:
    return text.translate(_HOMOGLYPHS)


def reverse(text: str) -> str:
    return text[::-1]


#: Scheme name -> encoder. Every scheme here can be named in an attack's or a selection's encodings.
ENCODERS: dict[str, Callable[[str], str]] = {
    "base64": b64,
    "hex": hexa,
    "rot13": rot13,
    "atbash": atbash,
    "morse": morse,
    "leetspeak": leetspeak,
    "unicode_tags": unicode_tags,
    "zero_width": zero_width,
    "homoglyph": homoglyph,
    "reverse": reverse,
}

#: How an instruction names a scheme when the payload is sent encoded.
SCHEME_NAMES: dict[str, str] = {
    "base64": "Base64",
    "hex": "hexadecimal",
    "rot13": "ROT13",
    "atbash": "the Atbash cipher",
    "morse": "Morse code",
    "leetspeak": "leetspeak",
    "unicode_tags": "invisible Unicode tag characters",
    "zero_width": "text with zero-width spaces",
    "homoglyph": "look-alike letters",
    "reverse": "reversed text",
}


def encode(scheme: str, text: str) -> str:
    try:
        encoder = ENCODERS[scheme]
    except KeyError:
        raise ValueError(f"unknown encoding scheme {scheme!r}; known: {', '.join(sorted(ENCODERS))}") from None
    return encoder(text)


def decode_morse(text: str) -> str:
    words = [w for w in text.strip().split("/")]
    return " ".join("".join(_MORSE_BACK.get(code, "") for code in word.split()) for word in words)


def decode_unicode_tags(text: str) -> str:
    return "".join(chr(ord(c) - _TAG_BASE) if _TAG_BASE < ord(c) < _TAG_BASE + 0x80 else c for c in text)


def try_b64(token: str) -> str | None:
    """The UTF-8 text a base64 token decodes to (padding restored), or None."""
    if len(token) < 8:
        return None
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def try_hex(token: str) -> str | None:
    if len(token) < 8 or len(token) % 2:
        return None
    try:
        return bytes.fromhex(token).decode()
    except (ValueError, UnicodeDecodeError):
        return None
