"""Runs of a character class in a text, found with ``bytes.translate`` instead of a regex scan.

Why: several prefilters ask "is there a run of at least N characters of some ASCII class?" (a base64
payload is 16 base64 characters in a row, a vendor key a whitespace-free token of 14). A regex that
starts with a character class is tried at every position of a 2 KB prompt, which takes 20-30 µs;
mapping the text's UTF-8 bytes to ``a`` (in the class) and a space (not in it) and looking for a
literal ``aaaa...`` takes 2-3 µs. Non-ASCII characters encode to bytes 0x80 and above, none of which
is in an ASCII class, so the answer is the same for any text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_IN = ord("a")
_OUT = ord(" ")


def class_table(member: Callable[[str], bool]) -> bytes:
    """A ``bytes.translate`` table: ``a`` for the ASCII characters ``member`` accepts, else a space."""
    return bytes(_IN if code < 128 and member(chr(code)) else _OUT for code in range(256))


def as_bytes(text: str) -> bytes:
    """``text`` as UTF-8, any lone surrogate as ``?`` (a character in no class used here)."""
    return text.encode("utf-8", "replace")


def has_run(text: str, table: bytes, length: int) -> bool:
    """Whether ``text`` has ``length`` or more consecutive characters that ``table`` maps to ``a``."""
    return _needle(length) in as_bytes(text).translate(table)


@lru_cache(maxsize=16)
def _needle(length: int) -> bytes:
    return b"a" * length


@lru_cache(maxsize=16)
def _run_pattern(length: int) -> re.Pattern[bytes]:
    # Written as a literal prefix so the regex engine jumps between candidate runs.
    return re.compile(b"a" * length + b"a*")


_WHITESPACE = class_table(lambda char: not char.isspace())


def long_tokens(text: str, length: int) -> list[str]:
    """``[token for token in text.split() if len(token) >= length]``, faster for ASCII text.

    For ASCII text ``str.split`` splits exactly at the characters ``str.isspace`` accepts, so the
    runs of non-space bytes are the tokens; other text takes the plain path (``str.split`` also
    splits at Unicode spaces, which a byte table cannot see)."""
    if not text.isascii():
        return [token for token in text.split() if len(token) >= length]
    mapped = text.encode("ascii").translate(_WHITESPACE)
    if _needle(length) not in mapped:
        return []
    return [text[match.start() : match.end()] for match in _run_pattern(length).finditer(mapped)]
