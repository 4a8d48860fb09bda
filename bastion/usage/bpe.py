"""Byte-level BPE token counting in pure Python, as llama.cpp tokenizes GPT-2-style vocabularies.

Counting needs only the merge table: a text is split into words by the pre-tokenizer's patterns,
each word's UTF-8 bytes are mapped to GPT-2's printable stand-ins, and merges are applied lowest
rank first (all occurrences, left to right) until none applies; every remaining symbol is one token.
This is what llama.cpp does for ``tokenizer.ggml.model = gpt2`` with ``parse_special`` off, so counts
match its tokenizer without loading it (tests/local/test_tokenizer.py compares the two).

Words repeat (prose, system prompts, JSON keys), so each word's count is cached; the cache is
emptied when it reaches ``WORD_CACHE_SIZE`` words, which bounds it at a few MB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import regex

#: llama.cpp's pre-tokenizer patterns (llama-vocab.cpp), applied in order: each splits the pieces
#: the previous one produced, and what a pattern does not match stays a piece of its own.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "gpt2": (_GPT2,),
    "smollm": (r"\p{N}", _GPT2),
    "starcoder": (r"\p{N}", _GPT2),
}
WORD_CACHE_SIZE = 50_000


def _byte_stand_ins() -> list[str]:
    """GPT-2's byte -> printable character table: printable Latin-1 bytes stand for themselves,
    the others are shifted past U+0100 in order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return [table[byte] for byte in range(256)]


def _splitter(patterns: Sequence[str]) -> Callable[[str], list[str]]:
    """A function splitting a text into words by ``patterns`` applied one after the other."""
    compiled = [regex.compile(pattern) for pattern in patterns]

    def split(text: str) -> list[str]:
        pieces = [text]
        for pattern in compiled:
            next_pieces: list[str] = []
            for piece in pieces:
                if len(piece) == 1:
                    # One character stays one piece under any pattern: digit-split numbers and
                    # punctuation make many of these, and a search per piece dominated the split.
                    next_pieces.append(piece)
                    continue
                end = 0
                for match in pattern.finditer(piece):
                    if match.start() > end:
                        next_pieces.append(piece[end : match.start()])
                    next_pieces.append(match.group())
                    end = match.end()
                if end < len(piece):
                    next_pieces.append(piece[end:])
            pieces = next_pieces
        return pieces

    return split


class ByteLevelBPE:
    """Counts tokens of a byte-level BPE vocabulary given its merges ("left right", best first)."""

    def __init__(self, merges: Sequence[str], pre_tokenizer: str) -> None:
        patterns = PRE_TOKENIZERS.get(pre_tokenizer)
        if patterns is None:
            raise ValueError(f"pre-tokenizer {pre_tokenizer!r} is not supported")
        self._split = _splitter(patterns)
        self._ranks: dict[str, int] = {merge: rank for rank, merge in enumerate(merges)}
        self._stand_ins = _byte_stand_ins()
        self._words: dict[str, int] = {}

    def count(self, text: str) -> int:
        words = self._words
        total = 0
        for word in self._split(text):
            count = words.get(word)
            if count is None:
                count = self._count_word(word)
                if len(words) >= WORD_CACHE_SIZE:
                    words.clear()
                words[word] = count
            total += count
        return total

    def _count_word(self, word: str) -> int:
        stand_ins = self._stand_ins
        symbols = [stand_ins[byte] for byte in word.encode("utf-8", errors="replace")]
        ranks = self._ranks
        while len(symbols) > 1:
            best: Any = None
            best_rank = len(ranks)
            for left, right in pairwise(symbols):
                rank = ranks.get(f"{left} {right}", best_rank)
                if rank < best_rank:
                    best, best_rank = (left, right), rank
            if best is None:
                break
            symbols = _merge(symbols, *best)
        return len(symbols)


def _merge(symbols: list[str], left: str, right: str) -> list[str]:
    """``symbols`` with every ``left right`` pair (left to right, not overlapping) joined."""
    merged: list[str] = []
    index, last = 0, len(symbols) - 1
    while index <= last:
        if index < last and symbols[index] == left and symbols[index + 1] == right:
            merged.append(left + right)
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return merged
