"""The byte-table shortcuts give exactly what the plain computations they replace give."""

from __future__ import annotations

import random
import re

import numpy as np

from bastion.guard import decoders, invisible, normalize, runs
from bastion.guard.ngrams import square_counts

# Characters that exercise every branch: the classes' members and non-members, ASCII and Unicode
# spaces, DEL (which ``runs.marked`` writes for non-ASCII), non-BMP and lone surrogates.
ALPHABET = [
    "a", "Z", "0", "1", "3", "@", "$", "+", "/", "_", "-", "=", " ", "\n", "\x1c", "\x7f", "\u00a0",
    "\u3000", "é", "漢", "\u200b", "\u202e", "\ufe0f", "\U000e0041", "\U0001f600", "\ud800", "ж",
]  # fmt: skip
_NON_ASCII_RUN_RE = re.compile(r"[^\x00-\x7f]+")


def _texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "a" * 40, "SWdub3JlIHRoZSBydWxlcw== and 1gn0r3 th3 ru13s " * 3]
    for _ in range(count):
        size = rng.choice([1, 4, 20, 80, 300])
        # Mostly base64-ish characters, so long runs and long tokens occur.
        texts.append("".join(rng.choice(ALPHABET) if rng.random() < 0.3 else rng.choice("ab01+/") for _ in range(size)))
    return texts


def test_non_ascii_runs_are_the_regex_runs() -> None:
    for text in _texts(3000, 1):
        assert runs.non_ascii_runs(text) == [m.span() for m in _NON_ASCII_RUN_RE.finditer(text)]


def test_long_tokens_are_the_long_split_tokens() -> None:
    for text in _texts(3000, 2):
        for length in (2, 5, 14):
            assert runs.long_tokens(text, length) == [t for t in text.split() if len(t) >= length]


def test_base64_runs_are_the_regex_matches() -> None:
    for text in _texts(3000, 3):
        expected = [m.span() for m in decoders._B64_RUN_RE.finditer(text)]
        assert [m.span() for m in decoders._base64_runs(text)] == expected
        assert runs.has_run(text, decoders._B64_CLASS, 16) == bool(expected)


def test_search_inside_runs_is_a_search_of_the_text() -> None:
    pattern = re.compile("[\u0400-\u04ff\u200b]")
    for text in _texts(2000, 4):
        assert runs.search_runs(pattern, text, runs.non_ascii_runs(text)) == (pattern.search(text) is not None)


def test_leetspeak_folding_matches_a_character_by_character_reading() -> None:
    hint = re.compile(r"[013457@$](?:(?<=[a-z][013457@$])|(?=[a-z]))")
    token_chars = set("abcdefghijklmnopqrstuvwxyz0123456789@$")

    def reference(view: str) -> str:
        pieces, last, found = [], 0, hint.search(view)
        while found is not None:
            start = end = found.start()
            while start > 0 and view[start - 1] in token_chars:
                start -= 1
            while end < len(view) and view[end] in token_chars:
                end += 1
            if start >= last:
                token = view[start:end]
                letters = sum(ch.isalpha() for ch in token)
                mostly_digits = letters * 2 < len(token) - 1 and len(token) > 3
                pieces += [view[last:start], token if mostly_digits else token.translate(normalize._LEET_TABLE)]
                last = end
            found = hint.search(view, max(end, found.start() + 1))
        return "".join([*pieces, view[last:]])

    for text in _texts(3000, 5):
        view = text.lower()
        assert normalize._fold_leet(view) == reference(view)
    long_token = "x1" * 200 + " h3ll0 " + "ab" * 100 + "3"
    assert normalize._fold_leet(long_token) == reference(long_token)


def test_invisible_candidates_inside_few_runs_are_all_candidates() -> None:
    for text in _texts(2000, 6):
        spans = [m.span() for m in invisible._candidates(text)]
        assert spans == [m.span() for m in invisible._CANDIDATE_RE.finditer(text)]


def test_square_counts_equal_counting_by_sorting() -> None:
    rng = np.random.default_rng(7)
    for size in (0, 1, 2, 50, 3000):
        for high in (3, 1000, 1 << 18):
            buckets = rng.integers(0, high, size, dtype=np.int64)
            _, counts = np.unique(buckets, return_counts=True)
            assert square_counts(buckets) == int(np.dot(counts, counts))
