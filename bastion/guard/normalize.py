# ruff: noqa: RUF001, RUF002  (look-alike letters are this module's subject)
"""Text normalisation for matching: one folded "view" of a text plus a map back to its offsets.

Detectors that look for words (injection phrases, leaked prompt shingles) match against a view in
which the usual disguises are undone:

* compatibility forms (fullwidth, mathematical bold, ligatures, circled letters) -> NFKD base form;
* diacritics dropped, so ``Anweisungen``/``instrucciónes`` match accent-free patterns and accent
  games (``ignóre``) fail;
* invisible and format characters removed (``ig\u200bnore``);
* Cyrillic/Greek look-alikes mapped to Latin when they sit in Latin words or Latin text
  (``іgnоrе`` with Cyrillic letters), while genuinely Russian or Greek text is left alone;
* leetspeak folded inside tokens that mix letters with digits or symbols (``1gn0r3``);
* lower-cased.

ASCII text, by far the common case, costs one ``str.lower`` and one regex scan.
Only non-ASCII runs are rewritten, so the offset map stays a short list of changed runs.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

import bastion.guard.runs as runs

# Characters that render as nothing (or steer rendering) and are used to split or hide words.
# Variation selectors FE00-FE0F are left out: emoji use them legitimately.
INVISIBLE_CLASS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_INVISIBLE_RE = re.compile(f"[{INVISIBLE_CLASS}]")

# Look-alike letters from Cyrillic, Greek and Armenian (both cases), mapped to the Latin letter they
# imitate. Applied after NFKD, before lower-casing.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "А": "a", "а": "a", "В": "b", "в": "b", "Е": "e", "е": "e", "Ё": "e", "ё": "e", "К": "k",
    "к": "k", "М": "m", "м": "m", "Н": "h", "н": "h", "О": "o", "о": "o", "Р": "p", "р": "p",
    "С": "c", "с": "c", "Т": "t", "т": "t", "Х": "x", "х": "x", "У": "y", "у": "y", "Ѕ": "s",
    "ѕ": "s", "І": "i", "і": "i", "Ї": "i", "ї": "i", "Ј": "j", "ј": "j", "Ԁ": "d", "ԁ": "d",
    "Ү": "y", "ү": "y", "Һ": "h", "һ": "h", "Ԛ": "q", "ԛ": "q", "Ԝ": "w", "ԝ": "w", "Ь": "b",
    "ь": "b", "ӏ": "l", "Ӏ": "l", "Ꮃ": "w", "п": "n", "г": "r", "ց": "g",
    # Greek
    "Α": "a", "α": "a", "Β": "b", "β": "b", "Ε": "e", "ε": "e", "Ζ": "z", "Η": "h", "Ι": "i",
    "ι": "i", "Κ": "k", "κ": "k", "Μ": "m", "Ν": "n", "ν": "v", "Ο": "o", "ο": "o", "Ρ": "p",
    "ρ": "p", "Τ": "t", "τ": "t", "Υ": "y", "υ": "u", "Χ": "x", "χ": "x", "ϲ": "c", "ϳ": "j",
    "ς": "s", "ω": "w",
    # Armenian and Latin extensions
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ı": "i", "ɡ": "g", "ɑ": "a", "ʟ": "l", "ɪ": "i",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
# Latin letters that NFKD does not decompose; spelled the way people type them without the key.
_LATIN_FOLD_TABLE = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "đ": "d", "Đ": "D",
                                   "ł": "l", "Ł": "L", "œ": "oe", "Œ": "OE", "þ": "th"})  # fmt: skip

_LEET_TABLE = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"}
)


@dataclass(slots=True, frozen=True)
class _Edit:
    view_start: int
    view_end: int
    orig_start: int
    orig_end: int


class OffsetMap:
    """Maps offsets in a view back to the original text. Identity unless some run changed length."""

    __slots__ = ("_edits", "_starts")

    def __init__(self, edits: list[_Edit] | None = None) -> None:
        self._edits = edits or []
        self._starts = [e.view_start for e in self._edits]

    @property
    def identity(self) -> bool:
        return not self._edits

    def to_original(self, pos: int) -> int:
        if not self._edits:
            return pos
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return pos
        edit = self._edits[i]
        if pos < edit.view_end:
            # Inside a rewritten run: point at the run's start (or end for its end boundary).
            return edit.orig_start if pos == edit.view_start else min(edit.orig_end, edit.orig_start + 1)
        return edit.orig_end + (pos - edit.view_end)

    def span(self, start: int, end: int) -> tuple[int, int]:
        if not self._edits:
            return start, end
        orig_start = self.to_original(start)
        i = bisect_right(self._starts, end - 1) - 1
        if i >= 0 and self._edits[i].view_start <= end - 1 < self._edits[i].view_end:
            orig_end = self._edits[i].orig_end
        else:
            orig_end = self.to_original(end)
        return orig_start, max(orig_start, orig_end)


@dataclass(slots=True)
class MatchView:
    """A folded copy of ``original`` for matching, with offsets mappable back."""

    original: str
    view: str
    offsets: OffsetMap

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.offsets.span(start, end)


def _fold_run(run: str, fold_confusables: bool) -> str:
    decomposed = unicodedata.normalize("NFKD", run)
    # Drop Latin-style diacritics only (U+0300-036F); kana voicing marks and the like must survive.
    folded = _DIACRITICS_RE.sub("", decomposed).translate(_LATIN_FOLD_TABLE)
    if not folded.isascii():
        folded = unicodedata.normalize("NFC", folded)
    folded = _INVISIBLE_RE.sub("", folded)
    if fold_confusables:
        folded = folded.translate(_CONFUSABLE_TABLE)
    return folded


_DIACRITICS_RE = re.compile("[\u0300-\u036f]")


def _latin_majority(text: str) -> bool:
    ascii_count = len(text.encode("ascii", "ignore"))
    return ascii_count >= 2 * (len(text) - ascii_count)


def build_view(text: str, *, fold_leet: bool = True) -> MatchView:
    """Fold ``text`` for matching (see module docstring)."""
    if text.isascii():
        view = text.lower()
        if fold_leet:
            view = _fold_leet(view)
        return MatchView(text, view, OffsetMap())

    latin = _latin_majority(text)
    edits: list[_Edit] = []
    pieces: list[str] = []
    last = 0
    view_len = 0
    for start, end in runs.non_ascii_runs(text):
        if start > last:
            pieces.append(text[last:start])
            view_len += start - last
        run = text[start:end]
        # A look-alike sitting against a Latin letter is a disguise even in non-Latin text.
        touches_latin = (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
        # Genuinely non-Latin text keeps its letters, so Russian or Greek patterns still match it.
        folded = _fold_run(run, latin or touches_latin)
        pieces.append(folded)
        if len(folded) != len(run):
            edits.append(_Edit(view_len, view_len + len(folded), start, end))
        view_len += len(folded)
        last = end
    if last < len(text):
        pieces.append(text[last:])
    folded_text = "".join(pieces)
    view = folded_text.lower()
    if len(view) != len(folded_text):
        # Rare: a character whose lower case is longer. Keep offsets aligned by lowering per char.
        view = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in folded_text)
    if fold_leet:
        view = _fold_leet(view)
    return MatchView(text, view, OffsetMap(edits))


def _fold_leet(view: str) -> str:
    """Fold leetspeak in the tokens around each letter/leet-symbol contact; the rest is untouched.

    The contacts are found in a one-byte-per-character copy of the view mapped to classes (``l``
    for a-z, ``d`` for the leet symbols; see ``runs``), where a literal-led byte regex finds them
    in a fraction of the time the same test takes on the text, and most texts have none."""
    classes = runs.marked(view).translate(_LEET_CLASSES)
    hint = _LEET_HINT_RE.search(classes)
    if hint is None:
        return view
    pieces: list[str] = []
    last = 0
    while hint is not None:
        start = _token_start(view, hint.start())
        end = _TOKEN_REST_RE.match(view, hint.start()).end()  # type: ignore[union-attr]  # matches ""
        if start >= last:
            pieces.append(view[last:start])
            pieces.append(_leet_word(view[start:end]))
            last = end
        hint = _LEET_HINT_RE.search(classes, max(end, hint.start() + 1))
    pieces.append(view[last:])
    return "".join(pieces)


# A leet symbol next to a letter, in the class bytes: "d" after an "l" or before one.
_LEET_HINT_RE = re.compile(b"d(?:(?<=ld)|(?=l))")
_LEET_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789@$"
# Byte classes for ``_fold_leet``: "l" for a-z, "d" for the leet symbols (they fold to letters).
_LEET_CLASSES = bytes(
    ord("l") if 97 <= code <= 122 else ord("d") if chr(code) in "013457@$" else ord(" ") for code in range(256)
)
_TOKEN_REST_RE = re.compile(r"[a-z0-9@$]*")
_NOT_LETTERS = b"0123456789@$"
# How far back one ``rstrip`` looks for a token's start (a longer token takes another step).
_STEP = 64


def _token_start(view: str, pos: int) -> int:
    """Where the run of token characters that ends at ``pos`` starts (``str.rstrip`` instead of a
    Python loop per character: a base64 blob is one long "token")."""
    while True:
        low = max(0, pos - _STEP)
        kept = view[low:pos].rstrip(_LEET_TOKEN_CHARS)
        if kept or low == 0:
            return low + len(kept)
        pos = low


def _leet_word(token: str) -> str:
    """``token`` (letters, digits, ``@`` and ``$`` only) with leet symbols read as letters."""
    # Leave tokens that are mostly digits (versions, ids, "h264") alone; leet words are mostly letters.
    letters = len(token.encode("ascii").translate(None, _NOT_LETTERS))
    if letters * 2 < len(token) - 1 and len(token) > 3:
        return token
    return token.translate(_LEET_TABLE)


def word_set(words: str) -> frozenset[str]:
    """A frozen set of the space-separated words in ``words`` (keeps word lists compact)."""
    return frozenset(words.split())


def strip_invisible(text: str) -> str:
    """Remove every invisible/format character (no context rules; used for comparison views)."""
    if text.isascii():
        return text
    return _INVISIBLE_RE.sub("", text)


def fold_latin(text: str) -> str:
    """``text`` lower-cased with compatibility forms, accents, invisible characters and look-alikes
    folded to plain Latin everywhere (no context rule, unlike ``build_view``): for comparing letters
    with a known Latin text, where an answer spelled entirely in Cyrillic look-alikes is still a copy."""
    if text.isascii():
        return text.lower()
    return _fold_run(text, True).lower()


_ALNUM_RE = re.compile(r"[^0-9a-z]+")


def alnum_fold(text: str) -> str:
    """Lower-case ASCII letters and digits only: the view used to find a canary however spaced."""
    folded = text.lower() if text.isascii() else build_view(text, fold_leet=False).view
    return _ALNUM_RE.sub("", folded)
