"""Exact token counts for OpenAI's ``cl100k_base`` (GPT-4, GPT-4 Turbo, GPT-3.5 Turbo and the
``text-embedding-3-*`` / ``ada-002`` models), in pure Python from the vocabulary that ships in
``data/`` (nothing is downloaded, tiktoken is not needed).

This is tiktoken's algorithm: the text is split by cl100k's pre-tokenizer pattern; a piece that is
itself a token counts one; otherwise its bytes are merged pairwise, the adjacent pair whose merge
has the lowest rank first (the leftmost on a tie), until no pair is in the vocabulary, and every
remaining part is a token. Counts of pieces are cached (bounded), so prose costs a dictionary
lookup per word once its words have been seen. tests/analyzer/test_tokens.py compares the counts
with tiktoken's own encoder built over the same vocabulary.
"""

from __future__ import annotations

import threading
from functools import cache

import regex

from bastion.usage.cl100k import _token_bytes

NAME = "cl100k_base (OpenAI), from the vocabulary shipped with Bastion"
#: cl100k_base's pre-tokenizer, as tiktoken publishes it.
PATTERN = regex.compile(
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
PIECE_CACHE_SIZE = 100_000
_pieces: dict[str, int] = {}
_lock = threading.Lock()


@cache
def _ranks() -> dict[bytes, int]:
    """Token bytes -> rank (the rank is the token id); built once, about 0.1 s."""
    with _lock:
        return {token: rank for rank, token in enumerate(_token_bytes())}


def loaded() -> bool:
    """Whether the rank table is built (building it takes a moment: keep it off an event loop)."""
    return _ranks.cache_info().currsize > 0


def _merge_count(piece: bytes, ranks: dict[bytes, int]) -> int:
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best = -1
        best_rank = 0
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best < 0 or rank < best_rank):
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return len(parts)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k_base (special tokens are counted as ordinary text)."""
    ranks = _ranks()
    total = 0
    for match in PATTERN.finditer(text):
        piece = match.group()
        count = _pieces.get(piece)
        if count is None:
            encoded = piece.encode("utf-8")
            count = 1 if encoded in ranks else _merge_count(encoded, ranks)
            if len(_pieces) >= PIECE_CACHE_SIZE:
                _pieces.clear()
            _pieces[piece] = count
        total += count
    return total
