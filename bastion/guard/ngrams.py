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
divided by the square root of the number of n-grams (an L2 norm without the sort that exact
per-bucket counts would need); texts are scored in windows of ``WINDOW_CHARS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bastion.guard.normalize import build_view

#: Characters per window. Short on purpose: with the L2-style scale the logit of a window grows
#: with the square root of its length, so windows bound how much length alone can add (the
#: corpus's attacks are longer than its benign rows; a long benign document must not look like one).
WINDOW_CHARS = 1024
_STRIDE = WINDOW_CHARS // 2
CHAR_NGRAMS = (3, 4, 5)
# FNV-1a's 64-bit prime (odd, so invertible modulo 2**64) and a multiplier for bucket mixing.
_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15
_WORD_SALT = 0xC2B2AE3D27D4EB4F
_BIGRAM_SALT = 0x165667B19E3779F9

_SPACES_RE = re.compile(r"\s+")
_DIGITS = str.maketrans("123456789", "000000000")

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


_POW = _powers(_PRIME, WINDOW_CHARS + 8)
_INV_POW = _powers(pow(_PRIME, -1, 1 << 64), WINDOW_CHARS + 8)


def normalize(text: str) -> str:
    """The folded form the features are computed on (``build_view``, spaces collapsed, digits as 0)."""
    folded = build_view(text).view.translate(_DIGITS)
    return " " + _SPACES_RE.sub(" ", folded).strip() + " "


def windows(normalized: str) -> list[str]:
    """Overlapping windows of at most ``WINDOW_CHARS`` characters (one window for a short text)."""
    if len(normalized) <= WINDOW_CHARS:
        return [normalized]
    starts = range(0, len(normalized) - _STRIDE, _STRIDE)
    return [normalized[start : start + WINDOW_CHARS] for start in starts]


@dataclass(frozen=True, slots=True)
class HashedNgrams:
    """One window's features: bucket indices (with repeats) and the value each occurrence adds."""

    buckets: npt.NDArray[np.int64]
    scale: float


def _word_mask(codes: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    mask = np.ones(codes.shape, dtype=bool)
    ascii_positions = codes < 128
    mask[ascii_positions] = _ASCII_WORD[codes[ascii_positions]]
    # Non-ASCII letters are word characters, except the punctuation blocks.
    punctuation = ((codes >= 0x2000) & (codes <= 0x206F)) | ((codes >= 0x3000) & (codes <= 0x303F))
    punctuation |= (codes >= 0xFF00) & (codes <= 0xFF0F)
    mask[punctuation] = False
    return mask


def _bucket(hashes: npt.NDArray[np.uint64], salt: int, bits: int) -> npt.NDArray[np.int64]:
    mixed = (hashes ^ np.uint64(salt)) * np.uint64(_MIX)
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def featurize_window(window: str, bits: int) -> HashedNgrams:
    """Hashed n-gram buckets of one normalized window (at most ``WINDOW_CHARS`` characters)."""
    codes32 = np.frombuffer(window.encode("utf-32-le"), dtype=np.uint32)
    length = codes32.shape[0]
    codes = codes32.astype(np.uint64) + np.uint64(1)
    prefix = np.zeros(length + 1, dtype=np.uint64)
    np.cumsum(codes * _POW[:length], out=prefix[1:])
    parts: list[npt.NDArray[np.int64]] = []
    for n in CHAR_NGRAMS:
        if length < n:
            continue
        hashes = (prefix[n:] - prefix[:-n]) * _INV_POW[: length - n + 1]
        parts.append(_bucket(hashes, n, bits))
    mask = _word_mask(codes32)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    if starts.size:
        words = (prefix[ends] - prefix[starts]) * _INV_POW[starts]
        parts.append(_bucket(words, _WORD_SALT, bits))
        if starts.size > 1:
            bigrams = words[:-1] * np.uint64(_PRIME) + words[1:]
            parts.append(_bucket(bigrams, _BIGRAM_SALT, bits))
    if not parts:
        return HashedNgrams(np.zeros(0, dtype=np.int64), 0.0)
    buckets = np.concatenate(parts)
    return HashedNgrams(buckets, 1.0 / float(np.sqrt(buckets.shape[0])))
