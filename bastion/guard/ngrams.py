"""Hashed character and word n-grams of a text, computed with numpy (the learned detector's features).

Why not a vocabulary and a Python loop: a 2 KB prompt has about 6,000 character n-grams, and a
Python-level hash or dictionary look-up per n-gram costs more than the whole hot-path budget. Here
every n-gram's hash comes from one prefix sum over the code points: with ``P`` odd, the polynomial
hash of ``codes[i:j]`` is ``(H[j] - H[i]) * P**-i`` modulo 2**64, where ``H`` is the running sum of
``codes[k] * P**k``. numpy's unsigned arithmetic wraps, so the whole window is a handful of array
operations. The hash is fixed (no per-process seed), so the weights trained once score the same
everywhere.

The text is first folded the way the rules see it (``normalize.build_view``: look-alikes, accents,
invisible characters, leetspeak, case), whitespace runs become one space and digits become ``0``.
Features: character 3-, 4- and 5-grams, word unigrams and word bigrams, each in its own hash space
(the n is mixed into the hash), into ``2**bits`` buckets. A row's value per bucket is its count
divided by the L2 norm of the window's counts (``count_norm``: repeating a phrase does not make
it weigh more); texts are scored in overlapping windows of ``WINDOW_CHARS``, an
n-gram or word counting for a window when it lies wholly inside it. The n-grams are hashed once
per text; each window's sum is a difference of running sums, so overlapping windows cost nothing
extra at scoring time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bastion.guard.normalize import build_view

#: Characters per window. Short on purpose: with the L2-style scale the logit of a window grows
#: with the square root of its length, so windows bound how much length alone can add (the
#: corpus's attacks are longer than its benign rows; a long benign document must not look like one).
WINDOW_CHARS = 1024
_STRIDE = WINDOW_CHARS // 2
#: A long text is hashed in blocks of about this many characters (the power tables' length).
BLOCK_CHARS = 32_768
CHAR_NGRAMS = (3, 4, 5)
# FNV-1a's 64-bit prime (odd, so invertible modulo 2**64) and a multiplier for bucket mixing.
_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15
_WORD_SALT = 0xC2B2AE3D27D4EB4F
_BIGRAM_SALT = 0x165667B19E3779F9

_DIGITS = bytes.maketrans(b"123456789", b"000000000")

# Code points that separate words: ASCII non-alphanumerics, then general and CJK punctuation.
_ASCII_WORD = np.zeros(128, dtype=bool)
for _c in range(128):
    _ASCII_WORD[_c] = chr(_c).isalnum() or chr(_c) == "_"


def _powers(base: int, count: int) -> npt.NDArray[np.uint64]:
    values = np.empty(count, dtype=np.uint64)
    current = 1
    for index in range(count):
        values[index] = current
        current = (current * base) & _MASK64
    return values


_SALTS = {n: np.uint64(n) for n in CHAR_NGRAMS}
_PRIME_U64 = np.uint64(_PRIME)
_MIX_U64 = np.uint64(_MIX)
_WORD_SALT_U64 = np.uint64(_WORD_SALT)
_BIGRAM_SALT_U64 = np.uint64(_BIGRAM_SALT)

_TABLE = BLOCK_CHARS + WINDOW_CHARS + 8
_POW = _powers(_PRIME, _TABLE)
_INV_POW = _powers(pow(_PRIME, -1, 1 << 64), _TABLE)


def normalize_folded(folded: str) -> str:
    """The feature text of an already folded view: digits as 0, whitespace runs as one space.

    The digits are replaced in the UTF-8 bytes (``str.translate`` costs about 50 ns a character on
    non-ASCII text; no byte of a multi-byte character is an ASCII digit, so this is the same)."""
    zeroed = folded.encode("utf-8", "surrogatepass").translate(_DIGITS).decode("utf-8", "surrogatepass")
    return " " + " ".join(zeroed.split()) + " "


def normalize(text: str) -> str:
    """The folded form the features are computed on (``build_view``, spaces collapsed, digits as 0)."""
    return normalize_folded(build_view(text).view)


def window_bounds(length: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end of each window over a text of ``length`` characters (one window when short)."""
    if length <= WINDOW_CHARS:
        return np.zeros(1, dtype=np.int64), np.full(1, length, dtype=np.int64)
    starts = np.arange(0, length - _STRIDE, _STRIDE, dtype=np.int64)
    return starts, np.minimum(starts + WINDOW_CHARS, length)


@dataclass(frozen=True, slots=True)
class BlockNgrams:
    """Hashed n-grams of one block of text, by position: ``chars[k][i]`` is the bucket of the
    ``CHAR_NGRAMS[k]``-gram starting at ``i``; words and word pairs in order, with word bounds.
    All of them are views into ``buckets`` (one array, so scoring gathers the weights once)."""

    buckets: npt.NDArray[np.int64]
    chars: tuple[npt.NDArray[np.int64], ...]
    words: npt.NDArray[np.int64]
    bigrams: npt.NDArray[np.int64]
    word_starts: npt.NDArray[np.int64]
    word_ends: npt.NDArray[np.int64]
    #: This block's windows, relative to the block.
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]

    def window_buckets(self, index: int) -> npt.NDArray[np.int64]:
        """Every bucket of window ``index`` (with repeats): what training fits on."""
        return np.concatenate([self.buckets[a:b] for a, b in self._window_ranges()[index]])

    def _window_ranges(self) -> list[list[tuple[int, int]]]:
        """Per window, the range of ``buckets`` inside it for each kind of n-gram.

        Plain Python integers: a 2 KB text has three windows, and fifteen small ranges cost less
        as integer arithmetic than as a dozen numpy calls on arrays of three."""
        first = np.searchsorted(self.word_starts, self.starts, "left").tolist()
        last = np.searchsorted(self.word_ends, self.ends, "right").tolist()
        sizes = [chars.shape[0] for chars in self.chars]
        words, pairs = self.words.shape[0], self.bigrams.shape[0]
        out: list[list[tuple[int, int]]] = []
        for start, end, first_word, end_word in zip(self.starts.tolist(), self.ends.tolist(), first, last, strict=True):
            end_word = max(end_word, first_word)
            ranges: list[tuple[int, int]] = []
            offset = 0
            for n, size in zip(CHAR_NGRAMS, sizes, strict=True):
                low = min(start, size)
                ranges.append((offset + low, offset + max(min(end - n + 1, size), low)))
                offset += size
            ranges.append((offset + first_word, offset + end_word))
            offset += words
            # Word pairs (k, k + 1) inside a window: k from first to last - 2 (clipped to the pairs).
            pair_low = min(first_word, pairs)
            ranges.append((offset + pair_low, offset + max(min(end_word - 1, pairs), pair_low)))
            out.append(ranges)
        return out

    def window_logits(self, weights: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Each window's n-gram logit: the weights of its n-gram counts, L2-normalised."""
        ranges = self._window_ranges()
        logits = np.zeros(len(ranges), dtype=np.float64)
        for index, window in enumerate(ranges):
            selected = np.concatenate([self.buckets[a:b] for a, b in window])
            squares = square_counts(selected)
            if squares:
                total = float(weights[selected].sum(dtype=np.float64))
                logits[index] = total / max(math.sqrt(squares + NORM_PRIOR), 1.0)
        return logits


#: Added to a window's sum of squared counts before the square root: a text of a few words has
#: too few n-grams to be judged by them alone, so its n-gram logit shrinks toward zero (the bias
#: and the rules decide) instead of swinging on two or three fragments. About the n-grams of 60
#: characters; a 2 KB window's norm changes by 2%.
NORM_PRIOR = 200.0


def count_norm(buckets: npt.NDArray[np.int64]) -> float:
    """The L2 norm of a window's bucket counts, sqrt(sum of count squared + ``NORM_PRIOR``): a window
    of one n-gram repeated a thousand times weighs what that n-gram weighs once, not thirty times more."""
    if buckets.shape[0] == 0:
        return 0.0
    return float(np.sqrt(square_counts(buckets) + NORM_PRIOR))


# Per thread: a bucket -> "some position holding this bucket" table (see ``square_counts``). int16:
# a window holds at most about 4,100 n-grams, and at 2**18 buckets the table is 512 KB per thread.
_LOCAL = threading.local()
_POSITIONS = np.arange(np.iinfo(np.int16).max + 1, dtype=np.int16)


def square_counts(buckets: npt.NDArray[np.int64]) -> int:
    """The sum over distinct buckets of (occurrences in ``buckets``) squared, without sorting.

    Why not ``np.sort`` and run lengths: sorting a window's 3,400 buckets costs about 70 µs, three
    times the rest of its scoring. Instead every position writes its own index into a table slot per
    bucket; which write survives does not matter, only that all positions of one bucket then read
    the same surviving index back, so ``bincount`` of what they read counts each bucket's
    occurrences (under some representative). The table is never cleared: every slot read was just
    written. Exact integer arithmetic, so the norms equal the sorted computation's. (More positions
    than an int16 holds, or buckets past the table, which no window of the model has: by sorting.)
    """
    size = buckets.shape[0]
    if size == 0:
        return 0
    table: npt.NDArray[np.int16] | None = getattr(_LOCAL, "table", None)
    if table is None:
        table = _LOCAL.table = np.zeros(1 << _TABLE_BITS, dtype=np.int16)
    if size > _POSITIONS.shape[0] or int(buckets.max()) >= table.shape[0]:
        _, counts = np.unique(buckets, return_counts=True)
    else:
        table[buckets] = _POSITIONS[:size]
        counts = np.bincount(table[buckets])
    return int(np.dot(counts, counts))


#: Buckets the per-thread table covers: the packaged model's (a model with more bits still scores,
#: by the sorting path).
_TABLE_BITS = 18


def blocks(normalized: str) -> list[tuple[str, npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """The text cut into blocks for hashing, each with its windows' bounds relative to the block."""
    starts, ends = window_bounds(len(normalized))
    if len(normalized) <= BLOCK_CHARS + WINDOW_CHARS:
        return [(normalized, starts, ends)]
    out = []
    for offset in range(0, len(normalized), BLOCK_CHARS):
        chosen = (starts >= offset) & (starts < offset + BLOCK_CHARS)
        if not chosen.any():
            continue
        block_end = int(ends[chosen].max())
        out.append((normalized[offset:block_end], starts[chosen] - offset, ends[chosen] - offset))
    return out


def _word_mask(codes: npt.NDArray[np.uint32], ascii_text: bool) -> npt.NDArray[np.bool_]:
    if ascii_text:
        return _ASCII_WORD[codes]
    mask = np.ones(codes.shape, dtype=bool)
    ascii_positions = codes < 128
    mask[ascii_positions] = _ASCII_WORD[codes[ascii_positions]]
    # Non-ASCII letters are word characters, except the punctuation blocks.
    punctuation = ((codes >= 0x2000) & (codes <= 0x206F)) | ((codes >= 0x3000) & (codes <= 0x303F))
    punctuation |= (codes >= 0xFF00) & (codes <= 0xFF0F)
    mask[punctuation] = False
    return mask


def hash_block(block: str, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], bits: int) -> BlockNgrams:
    """The hashed n-grams of one block (at most ``BLOCK_CHARS + WINDOW_CHARS`` characters).

    Written with ``out=`` arguments into one preallocated array: at 2 KB, numpy's per-call cost and
    the temporaries, not the arithmetic, are what a hash takes."""
    codes32 = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
    length = codes32.shape[0]
    # H[k + 1] = sum of (code + 1) * P**i for i <= k.
    prefix = np.empty(length + 1, dtype=np.uint64)
    prefix[0] = 0
    running = prefix[1:]
    np.multiply(codes32, _POW[:length], out=running)
    np.add(running, _POW[:length], out=running)
    np.cumsum(running, out=running)
    padded = np.zeros(length + 2, dtype=bool)
    padded[1:-1] = _word_mask(codes32, block.isascii())
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    word_starts, word_ends = edges[0::2], edges[1::2]
    words = word_starts.shape[0]
    sizes = [max(length - n + 1, 0) for n in CHAR_NGRAMS] + [words, max(words - 1, 0)]
    # Raw hashes per kind, each with its salt, written in place; then mixed into buckets in one pass.
    raw = np.empty(sum(sizes), dtype=np.uint64)
    offset = 0
    for n, size in zip(CHAR_NGRAMS, sizes, strict=False):
        part = raw[offset : offset + size]
        np.subtract(prefix[n : n + size], prefix[:size], out=part)
        np.multiply(part, _INV_POW[:size], out=part)
        np.bitwise_xor(part, _SALTS[n], out=part)
        offset += size
    hashes = raw[offset : offset + words]
    np.subtract(prefix[word_ends], prefix[word_starts], out=hashes)
    np.multiply(hashes, _INV_POW[word_starts], out=hashes)
    if words > 1:
        pairs = raw[offset + words :]
        np.multiply(hashes[:-1], _PRIME_U64, out=pairs)
        np.add(pairs, hashes[1:], out=pairs)
        np.bitwise_xor(pairs, _BIGRAM_SALT_U64, out=pairs)
    np.bitwise_xor(hashes, _WORD_SALT_U64, out=hashes)
    np.multiply(raw, _MIX_U64, out=raw)
    np.right_shift(raw, np.uint64(64 - bits), out=raw)
    # Below 2**bits, so the same bits read as int64 (no copy).
    buckets = raw.view(np.int64)
    views: list[npt.NDArray[np.int64]] = []
    offset = 0
    for size in sizes:
        views.append(buckets[offset : offset + size])
        offset += size
    return BlockNgrams(buckets, tuple(views[:-2]), views[-2], views[-1], word_starts, word_ends, starts, ends)
