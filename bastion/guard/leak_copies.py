"""Transformed copies of the system prompt: its letters found again in an answer, however spelled.

The word-shingle overlap in ``leak`` needs the prompt's words. A model asked to hide what it
repeats takes them apart (``Y o u  a r e``, ``Y-o-u``, glued words, zero-width padding), shifts the
letters (rot13, any Caesar shift), reverses them, swaps in look-alikes or leetspeak, or encodes the
bytes (base64, hex...; see ``run_decoder``). This module compares letters instead of words:

* Both texts are reduced to their letters: look-alikes, accents and compatibility forms folded
  (``fold_latin``), lower-cased, leet digits read as the letters they stand for; everything else,
  spaces and separators included, is dropped.
* The letters become the stream of differences between neighbours (mod 26), which is the same
  whatever Caesar shift was applied, and which a reversed copy turns into the reversed prompt's.
* The prompt's stream is indexed by every 15-difference gram (16 letters, about three words),
  forwards and backwards. The answer's stream is sampled every 15 positions, so a copy of the prompt
  hits on consecutive samples whatever its alignment; one dictionary look-up per 15 letters.
* A hit counts only when it continues the previous one (the copy goes on for 31 letters, about six
  words, and the first 15 are not counted, like a shingle's first words), and the score is the share
  of the prompt's letters so copied: a leak at ``leak_threshold``, like the word overlap, with at
  least ``MIN_COPIED_LETTERS`` copied. A shared phrase or two scores little or nothing.
* Decoded runs go through the same reading in channels of their own (and are decoded once more, for
  base64 of base64).

The canary is looked for in every channel too. Its digits survive a Caesar shift and a reversal
keeps them in reverse order, so the digit stream is searched for the canary's digits (a C-level
``in``) and only a hit is checked letter by letter.

Everything is incremental: ``CopyTracker.feed`` takes text in any split and costs time linear in it,
so the streaming guard runs the same tracker over the text it checks.
"""

from __future__ import annotations

import math
import string
import struct
from functools import lru_cache

from bastion.guard.normalize import fold_latin
from bastion.guard.run_decoder import RunDecoder

#: Differences per gram (16 letters); also the answer's sampling step.
GRAM = 15
#: A copy must cover at least this many of the prompt's letters to count, whatever its share.
MIN_COPIED_LETTERS = 45
#: How many steps apart two hits of one copy may be: three samples missed to wrong letters.
MAX_GAP_STEPS = 4
#: Index entries per direction; a longer prompt is indexed every few positions (its copies are long).
MAX_INDEX_ENTRIES = 16_384
#: Decoding depth: the answer's text, what it decodes to, and what that decodes to.
MAX_DEPTH = 2

PLAIN_COPY = "PROMPT_OVERLAP"  # the letters in order: spaced, glued, padded or re-cased words
TRANSFORMED_COPY = "PROMPT_TRANSFORMED"  # shifted, reversed or decoded

_DIGITS = b"0123456789"
_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_NOT_ALNUM = bytes(c for c in range(256) if not chr(c).isascii() or not chr(c).isalnum())
_NOT_DIGIT = bytes(c for c in range(256) if c not in _DIGITS)
# a..z -> 0..25; leet digits -> the value of the letter they stand for ("2" and "6" are dropped).
_LETTER_VALUES = bytes.maketrans(
    string.ascii_lowercase.encode() + b"01345789", bytes(range(26)) + bytes(ord(c) - 97 for c in "oieastbg")
)
_PLUS_26 = bytes(min(c + 26, 255) for c in range(256))
_MOD_26 = bytes(c % 26 for c in range(256))


def alnum_bytes(text: str) -> bytes:
    """The ASCII letters and digits of ``text`` after folding, lower-cased."""
    data = text.encode("ascii") if text.isascii() else fold_latin(text).encode("ascii", "ignore")
    return data.translate(_LOWER, _NOT_ALNUM)


def traceable_canary(canary: str) -> bool:
    """Whether a disguised copy of ``canary`` (shifted, reversed) can be found by its digits: a canary
    with too few of them is still found verbatim, but not through a disguise."""
    return _CanaryWatch.usable(alnum_bytes(canary))


def letter_values(alnum: bytes) -> bytes:
    """Letters as 0..25, leet digits read as letters."""
    return alnum.translate(_LETTER_VALUES, b"26")


def differences(values: bytes) -> bytes:
    """``(values[i + 1] - values[i]) % 26`` for every i, computed in C.

    As little-endian integers, ``values[1:] + 26`` per byte minus ``values[:-1]`` never borrows
    (every byte of the first is at least 26, of the second at most 25), so one big-integer
    subtraction does all the byte subtractions at once.
    """
    count = len(values) - 1
    if count <= 0:
        return b""
    high = int.from_bytes(values[1:].translate(_PLUS_26), "little")
    low = int.from_bytes(values[:-1], "little")
    return (high - low).to_bytes(count, "little").translate(_MOD_26)


class CopyIndex:
    """The prompt's letter grams, forwards and backwards. Built once per prompt; shared, read-only."""

    __slots__ = ("denominator", "grams", "step", "values")

    def __init__(self, values: bytes, grams: dict[bytes, int], step: int) -> None:
        self.values = values
        #: gram -> (prompt position << 1 | reversed) + 1 (never 0, so ``any()`` finds hits)
        self.grams = grams
        #: Distance between two consecutive hits of a copy.
        self.step = step
        # What a whole copy counts: all letters but the first gram's and the last partial step.
        self.denominator = max(1, len(values) - 2 * GRAM)

    @classmethod
    def build(cls, prompt: str) -> CopyIndex | None:
        """The index, or None when the prompt has too few letters for a copy to be told from chance."""
        values = letter_values(alnum_bytes(prompt))
        size = len(values)
        if size < GRAM + 1 + MIN_COPIED_LETTERS:
            return None
        forward, backward = differences(values), differences(values[::-1])
        count = len(forward) - GRAM + 1
        stride = 1  # coprime with GRAM, so a copy still hits every GRAM * stride letters
        while count > stride * MAX_INDEX_ENTRIES or stride % 3 == 0 or stride % 5 == 0:
            stride += 1
        grams = {backward[j : j + GRAM]: ((size - 1 - j - GRAM) << 1 | 1) + 1 for j in range(0, count, stride)}
        grams.update({forward[i : i + GRAM]: (i << 1) + 1 for i in range(0, count, stride)})
        return cls(values, grams, GRAM * stride)


class _Coverage:
    """Which prompt letters a copy covered, shared by all channels of one answer."""

    __slots__ = ("copied", "marks", "needed", "plain", "step")

    def __init__(self, index: CopyIndex, threshold: float) -> None:
        self.marks = bytearray(len(index.values))
        self.copied = 0
        self.plain = 0
        self.step = index.step
        #: Copied letters that make a leak.
        self.needed = max(MIN_COPIED_LETTERS, math.ceil(threshold * index.denominator - 1e-9))

    def mark(self, position: int, plain: bool) -> None:
        end = position + self.step
        added = self.marks[position:end].count(0)
        if added:
            self.marks[position:end] = b"\x01" * len(self.marks[position:end])
            self.copied += added
            if plain:
                self.plain += added


class _LetterStream:
    """Samples one channel's difference stream against the index, carrying the unsampled tail."""

    __slots__ = ("_base", "_coverage", "_index", "_lookup", "_plain", "_previous", "_values")

    def __init__(self, index: CopyIndex, coverage: _Coverage, plain: bool) -> None:
        self._index = index
        self._lookup = index.grams.get
        self._coverage = coverage
        self._plain = plain  # the answer's own text (not decoded): an in-order copy is a plain one
        self._values = b""  # letter values from the next sample position on
        self._base = 0  # absolute position of ``_values[0]``
        # The last hit: (answer position, prompt position, reversed).
        self._previous: tuple[int, int, int] | None = None

    def feed(self, values: bytes) -> None:
        values = self._values + values
        usable = len(values) - GRAM  # grams of GRAM differences that fit
        if usable <= 0:
            self._values = values
            return
        # ``differences(values)``, inlined: this runs on every checked piece of a stream.
        diffs = (
            (int.from_bytes(values[1:].translate(_PLUS_26), "little") - int.from_bytes(values[:-1], "little"))
            .to_bytes(len(values) - 1, "little")
            .translate(_MOD_26)
        )
        count = (usable - 1) // GRAM + 1
        # The grams at 0, GRAM, 2 * GRAM...: one C call per block (blocks bound the cached layouts).
        keys: list[bytes] = []
        for first in range(0, count, GRAMS_PER_CALL):
            keys.extend(_grams(min(GRAMS_PER_CALL, count - first)).unpack_from(diffs, first * GRAM))
        found = list(map(self._lookup, keys))
        if any(found):
            self._hits(keys, found, values)
        consumed = count * GRAM
        self._values = values[consumed:]
        self._base += consumed

    def peek(self, values: bytes) -> None:
        """Read ``values`` as if they came next, then forget them (marks stay: they will come again)."""
        state = self._values, self._base, self._previous
        self.feed(values)
        self._values, self._base, self._previous = state

    def _hits(self, keys: list[bytes], found: list[int | None], values: bytes) -> None:
        prompt = self._index.values
        for number, entry in enumerate(found):
            if entry is None or len(set(keys[number])) < 4:
                continue  # a gram of one or two repeated steps ("aaaa", "abab") says nothing
            entry -= 1
            position, backward = entry >> 1, entry & 1
            start = number * GRAM
            plain = (
                self._plain
                and not backward
                and values[start : start + GRAM + 1] == prompt[position : position + GRAM + 1]
            )
            self._hit(self._base + start, position, backward, plain)

    def _hit(self, at: int, position: int, backward: int, plain: bool) -> None:
        """Count a hit that continues the previous one: as far on in the prompt as in the answer,
        within a few steps (a copy with a wrong letter here and there misses a sample or two). A
        copy's first gram (like a shingle's first words) is not counted, so short shared phrases add
        little and a 31-letter one nothing at all."""
        previous = self._previous
        if previous is not None and previous[2] == backward:
            distance = at - previous[0]
            moved = previous[1] - position if backward else position - previous[1]
            if moved == distance <= MAX_GAP_STEPS * self._index.step:
                self._coverage.mark(position, plain)
        self._previous = (at, position, backward)


class _CanaryWatch:
    """The canary in one channel: its digits in order (or reversed), then its letters up to a shift."""

    __slots__ = ("_canary", "_digits", "_first_digit", "_last_digit", "_reversed_digits", "_tail", "found")

    def __init__(self, canary: bytes) -> None:
        self._canary = canary
        self._digits, self._first_digit, self._last_digit = _digit_layout(canary)
        self._reversed_digits = self._digits[::-1]
        self._tail = b""
        self.found = False

    @staticmethod
    def usable(canary: bytes) -> bool:
        # Four digits make the digit search selective; a random 16-hex canary has ten on average.
        return len(canary.translate(None, _NOT_DIGIT)) >= 4

    def feed(self, alnum: bytes) -> None:
        window = self._tail + alnum
        self._tail = window[-(len(self._canary) - 1) :]
        digits = window.translate(None, _NOT_DIGIT)
        if self._digits in digits or self._reversed_digits in digits:
            self.found = self._spelled_in(window, digits)

    def peek(self, alnum: bytes) -> None:
        tail = self._tail
        self.feed(alnum)
        self._tail = tail

    def _spelled_in(self, window: bytes, digits: bytes) -> bool:
        """Whether the canary is in ``window`` with its letters shifted alike, forwards or reversed."""
        positions = [i for i, c in enumerate(window) if c in _DIGITS]
        size = len(self._canary)
        target = _shift_key(self._canary)
        for pattern, offset, reverse in (
            (self._digits, self._first_digit, False),
            (self._digits[::-1], size - 1 - self._last_digit, True),
        ):
            index = digits.find(pattern)
            while index >= 0:
                start = positions[index] - offset
                piece = window[start : start + size] if start >= 0 else b""
                if len(piece) == size and _shift_key(piece[::-1] if reverse else piece) == target:
                    return True
                index = digits.find(pattern, index + 1)
        return False


#: Grams unpacked per call: the cached layouts stay small whatever the length of the text.
GRAMS_PER_CALL = 256


@lru_cache(maxsize=GRAMS_PER_CALL)
def _grams(count: int) -> struct.Struct:
    """Unpacks ``count`` consecutive grams of ``GRAM`` bytes."""
    return struct.Struct(f"{GRAM}s" * count)


@lru_cache(maxsize=64)  # a canary is read by several trackers of one request (choices, stream end)
def _digit_layout(canary: bytes) -> tuple[bytes, int, int]:
    """The canary's digits, and where its first and last digit are."""
    digits = canary.translate(None, _NOT_DIGIT)
    first = min(canary.find(digit) for digit in set(digits))
    last = max(canary.rfind(digit) for digit in set(digits))
    return digits, first, last


def _shift_key(alnum: bytes) -> bytes:
    """``alnum`` with its letters shifted so that the first is ``a`` (digits unchanged)."""
    first = next((c for c in alnum if c not in _DIGITS), 97)
    return bytes(c if c in _DIGITS else (c - first) % 26 + 97 for c in alnum)


class _Channel:
    """One reading of the answer: its own text, or what its encoded runs decode to."""

    __slots__ = ("_canary", "_children", "_decoder", "_depth", "_letters", "_tracker")

    def __init__(self, tracker: CopyTracker, depth: int) -> None:
        self._tracker = tracker
        self._depth = depth
        index = tracker.index
        self._letters = _LetterStream(index, tracker.coverage, depth == 0) if index and tracker.coverage else None
        self._canary = _CanaryWatch(tracker.canary) if tracker.canary else None
        self._decoder = RunDecoder(self._decoded) if depth < MAX_DEPTH else None
        self._children: dict[str, _Channel] = {}

    def feed(self, text: str, tentative: bool = False) -> None:
        """Read the channel's next text; a tentative one is read but not taken as the stream's continuation."""
        alnum = alnum_bytes(text)
        letters, canary = self._letters, self._canary
        if letters is not None:
            (letters.peek if tentative else letters.feed)(alnum.translate(_LETTER_VALUES, b"26"))
        if canary is not None and not canary.found:
            (canary.peek if tentative else canary.feed)(alnum)
            self._tracker.canary_found = self._tracker.canary_found or canary.found
        if self._decoder is not None and not tentative:
            self._decoder.feed(text)

    def finish(self) -> None:
        if self._decoder is not None:
            self._decoder.finish()
        for child in self._children.values():
            child.finish()

    def _decoded(self, kind: str, text: str, tentative: bool) -> None:
        child = self._children.get(kind)
        if child is None:
            child = self._children[kind] = _Channel(self._tracker, self._depth + 1)
        child.feed(text, tentative)


class CopyTracker:
    """Transformed copies of one prompt (and its canary) in one answer. Feed text in order."""

    __slots__ = ("_root", "canary", "canary_found", "coverage", "found", "index", "threshold")

    def __init__(self, index: CopyIndex | None, canary: str | None, threshold: float) -> None:
        self.index = index
        self.coverage = _Coverage(index, threshold) if index is not None else None
        folded = alnum_bytes(canary) if canary else b""
        self.canary = folded if _CanaryWatch.usable(folded) else b""
        self.canary_found = False
        self.threshold = threshold
        #: A copy or the canary was found (the tracker then reads nothing more).
        self.found = False
        self._root = _Channel(self, 0)

    @property
    def active(self) -> bool:
        return self.index is not None or bool(self.canary)

    def feed(self, text: str) -> bool:
        """Read the next piece of the answer; True once a copy or the canary was found."""
        if not self.found and text:
            self._root.feed(text)
            coverage = self.coverage
            self.found = self.canary_found or (coverage is not None and coverage.copied >= coverage.needed)
        return self.found

    def finish(self) -> bool:
        """End of the answer: decode the runs still open."""
        if not self.found:
            self._root.finish()
            coverage = self.coverage
            self.found = self.canary_found or (coverage is not None and coverage.copied >= coverage.needed)
        return self.found

    @property
    def score(self) -> float:
        """Share of the prompt's letters copied (0 below ``MIN_COPIED_LETTERS``)."""
        coverage = self.coverage
        if coverage is None or coverage.copied < MIN_COPIED_LETTERS or self.index is None:
            return 0.0
        return min(1.0, coverage.copied / self.index.denominator)

    @property
    def finding_type(self) -> str:
        """``CANARY``, or whether the copy kept the letters in order (``PROMPT_OVERLAP``) or not."""
        if self.canary_found:
            return "CANARY"
        coverage = self.coverage
        return PLAIN_COPY if coverage is not None and coverage.plain * 2 >= coverage.copied else TRANSFORMED_COPY
