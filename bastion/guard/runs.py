"""Runs of a character class in a text, found with ``bytes.translate`` instead of a regex scan.

Why: several prefilters ask "is there a run of at least N characters of some ASCII class?" (a base64
payload is 16 base64 characters in a row, a vendor key a whitespace-free token of 14). A regex that
starts with a character class is tried at every position of a 2 KB prompt, which takes 20-30 µs;
mapping the text to one byte per character, the bytes to ``a`` (in the class) and a space (not in
it), and looking for a literal ``aaaa...`` takes 2-3 µs.

The one-byte-per-character form is the ASCII encoding with every other character written as a DEL
(``marked``): offsets in it are offsets in the text, and since no class here contains DEL, a
non-ASCII character (or a DEL of the text's own) ends a run just as it does in the text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from functools import lru_cache

_IN = ord("a")
_OUT = ord(" ")
DEL = "\x7f"


def _mark_non_ascii(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each character ASCII cannot encode becomes one DEL."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return DEL * (error.end - error.start), error.end


codecs.register_error("bastion.guard.mark_non_ascii", _mark_non_ascii)


def marked(text: str) -> bytes:
    """``text`` with one byte per character: ASCII as itself, anything else as DEL. The encoder
    finds the non-ASCII runs in C and calls the handler once per run."""
    return text.encode("ascii", "bastion.guard.mark_non_ascii")


def class_table(member: Callable[[str], bool]) -> bytes:
    """A ``bytes.translate`` table: ``a`` for the ASCII characters ``member`` accepts, else a space."""
    if member(DEL):
        raise ValueError("a run class must not contain DEL (it stands for non-ASCII characters)")
    return bytes(_IN if code < 128 and member(chr(code)) else _OUT for code in range(256))


def has_run(text: str, table: bytes, length: int) -> bool:
    """Whether ``text`` has ``length`` or more consecutive characters that ``table`` maps to ``a``."""
    return _needle(length) in marked(text).translate(table)


def run_starts(text: str, table: bytes, length: int) -> Iterator[int]:
    """Where each maximal run of ``length`` or more ``table`` characters starts, in order."""
    mapped = marked(text).translate(table)
    if _needle(length) not in mapped:
        return iter(())
    return (match.start() for match in _run_pattern(length).finditer(mapped))


@lru_cache(maxsize=16)
def _needle(length: int) -> bytes:
    return b"a" * length


@lru_cache(maxsize=16)
def _run_pattern(length: int) -> re.Pattern[bytes]:
    # Written as a literal prefix so the regex engine jumps between candidate runs.
    return re.compile(b"a" * length + b"a*")


# Space or not, for ``long_tokens``: DEL (any non-ASCII character in ``marked``) counts as not a space.
_NOT_SPACE = bytes(_IN if code < 128 and not chr(code).isspace() else _OUT for code in range(256))


def long_tokens(text: str, length: int) -> list[str]:
    """``[token for token in text.split() if len(token) >= length]``, without splitting all of it.

    A token is a run of non-space characters, so it lies inside a run of bytes that
    ``marked(text)`` has no ASCII space in; only those runs of ``length`` or more are split (again:
    a non-ASCII space such as U+00A0, a DEL in ``marked``, may still cut them)."""
    mapped = marked(text).translate(_NOT_SPACE)
    if _needle(length) not in mapped:
        return []
    return [
        token
        for match in _run_pattern(length).finditer(mapped)
        for token in text[match.start() : match.end()].split()
        if len(token) >= length
    ]


_DEL_RUN_RE = re.compile(b"\x7f\x7f*")  # a literal first: the regex engine skips to it


def non_ascii_runs(text: str) -> list[tuple[int, int]]:
    """The spans of the runs of non-ASCII characters, found in ``marked(text)``: about a tenth of
    the time of a negated-class regex, which is tried at every position. A text with a DEL of its
    own takes that regex."""
    if DEL in text:
        return [match.span() for match in _NON_ASCII_RUN_RE.finditer(text)]
    return [match.span() for match in _DEL_RUN_RE.finditer(marked(text))]


_NON_ASCII_RUN_RE = re.compile(r"[^\x00-\x7f]+")


#: Past this many non-ASCII runs (text in another script, where every word is one), a search per
#: run costs more than one search of the whole text.
FEW_RUNS = 64


def search_runs(pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]]) -> bool:
    """``pattern.search(text) is not None`` for a pattern that only matches non-ASCII characters,
    given ``spans = non_ascii_runs(text)``: looked for inside those runs only, when they are few."""
    if len(spans) > FEW_RUNS:
        return pattern.search(text) is not None
    return any(pattern.search(text, start, end) is not None for start, end in spans)
