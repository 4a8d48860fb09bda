"""Token-aware chunking on sentence and paragraph boundaries, with exact character offsets.

The text is cut into *units* (sentences; Markdown headings and list items; pieces of sentences
too long for one chunk), each measured in the embedding model's word pieces. Units are packed
greedily up to ``size`` tokens; a chunk that is mostly full closes at a paragraph end rather
than starting a paragraph it cannot finish. The next chunk repeats the previous one's last whole
units, at most ``overlap`` tokens of them. Every chunk is ``text[start:end]`` exactly (whitespace
at its ends trimmed), and only whitespace between chunks is ever left out.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from bastion.knowledge.extract import Extracted, page_at
from bastion.knowledge.tokenizer import MINILM_MAX_SEQUENCE, SPECIAL_TOKENS, TokenOffsets

#: The most word pieces a chunk may have: the model's window less [CLS] and [SEP].
MAX_CHUNK_TOKENS = MINILM_MAX_SEQUENCE - SPECIAL_TOKENS

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at . ! ? (closing quotes or brackets allowed) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
_MARKDOWN_LINE = re.compile(r"\n(?=[ \t]*(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|```|>))")
_NEVER = re.compile(r"(?!)")
#: Share of ``size`` after which a chunk closes at a paragraph end instead of starting a new one.
_PARAGRAPH_FILL = 0.7


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int
    start: int
    end: int
    text: str
    tokens: int
    page: int | None


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph: int
    #: Cut inside a word: the chunk holding it is re-measured on its own text.
    glued: bool = False
    #: Starts a page: no chunk spans a page break (a chunk has one page).
    hard: bool = False


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
    """Split text[start:end] at the ends of ``pattern`` matches, whitespace-trimmed, non-empty."""
    pieces: list[tuple[int, int]] = []
    cursor = start
    for match in pattern.finditer(text, start, end):
        pieces.append((cursor, match.end()))
        cursor = match.end()
    pieces.append((cursor, end))
    out = []
    for a, b in pieces:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            out.append((a, b))
    return out


class Chunker:
    """Chunks of at most ``size`` word pieces, consecutive ones sharing up to ``overlap``."""

    def __init__(self, tokenizer: TokenOffsets, size: int = 200, overlap: int = 40) -> None:
        if not 1 <= size <= MAX_CHUNK_TOKENS:
            raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK_TOKENS} word pieces")
        if not 0 <= overlap < size:
            raise ValueError("chunk overlap must be at least 0 and less than the chunk size")
        self.tokenizer = tokenizer
        self.size = size
        self.overlap = overlap

    def chunk(self, document: Extracted) -> list[Chunk]:
        text = document.text
        offsets = self.tokenizer.offsets(text)
        units = self._units(text, offsets, document.markdown, document.pages)
        spans = self._pack(units)
        chunks: list[Chunk] = []
        for start, end, tokens, glued in spans:
            fitted = self._fit(text, start, end) if glued else [(start, end, tokens)]
            for a, b, tokens in fitted:
                chunks.append(Chunk(len(chunks), a, b, text[a:b], tokens, page_at(document.pages, a)))
        return chunks

    # -- units ------------------------------------------------------------------------------------

    def _units(
        self, text: str, offsets: list[tuple[int, int]], markdown: bool, pages: list[tuple[int, int]]
    ) -> list[_Unit]:
        paragraphs = _spans(text, _PARAGRAPH, 0, len(text))
        cuts = sorted({start for start, _ in pages if start > 0})
        if cuts:  # a page break is a paragraph break
            split: list[tuple[int, int]] = []
            for a, b in paragraphs:
                inner = [cut for cut in cuts if a < cut < b]
                for x, y in zip([a, *inner], [*inner, b], strict=True):
                    split.extend(_spans(text, _NEVER, x, y))
            paragraphs = split
        units: list[_Unit] = []
        page = 0
        for number, (p_start, p_end) in enumerate(paragraphs):
            new_page = bisect.bisect_right(cuts, p_start)
            hard, page = new_page != page, new_page
            lines = _spans(text, _MARKDOWN_LINE, p_start, p_end) if markdown else [(p_start, p_end)]
            for l_start, l_end in lines:
                for s_start, s_end in _spans(text, _SENTENCE_END, l_start, l_end):
                    for unit in self._measure(text, s_start, s_end, offsets, number):
                        units.append(_Unit(unit.start, unit.end, unit.tokens, number, unit.glued, hard))
                        hard = False
        return units

    def _measure(self, text: str, start: int, end: int, offsets: list[tuple[int, int]], paragraph: int) -> list[_Unit]:
        """The unit [start, end), or pieces of it of at most ``size`` tokens, cut at token starts."""
        starts = _Starts(offsets)
        first = bisect.bisect_left(starts, start)
        last = bisect.bisect_left(starts, end)
        tokens = last - first
        if tokens <= self.size:
            return [_Unit(start, end, tokens, paragraph)]
        pieces = []
        cursor, index = start, first
        while last - index > self.size:
            cut = index + self.size
            glued = True
            # Prefer a cut at the start of a word (a token not glued to the one before it).
            for candidate in range(cut, index + self.size // 2, -1):
                if offsets[candidate][0] > offsets[candidate - 1][1]:
                    cut, glued = candidate, False
                    break
            stop = starts[cut]
            while stop > cursor and text[stop - 1].isspace():
                stop -= 1
            pieces.append(_Unit(cursor, stop, cut - index, paragraph, glued))
            cursor, index = starts[cut], cut
        pieces.append(_Unit(cursor, end, last - index, paragraph, pieces[-1].glued))
        return pieces

    # -- packing ----------------------------------------------------------------------------------

    def _pack(self, units: list[_Unit]) -> list[tuple[int, int, int, bool]]:
        """(start, end, tokens, glued) per chunk. Units are cut at whitespace, so word-piece counts
        add up (BERT splits words at whitespace first); only a mid-word cut needs re-measuring."""
        spans: list[tuple[int, int, int, bool]] = []
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and total + units[j].tokens <= self.size:
                if j > i and units[j].hard:
                    break
                if (
                    j > i
                    and units[j].paragraph != units[j - 1].paragraph
                    and total >= _PARAGRAPH_FILL * self.size
                    and total + self._paragraph_tokens(units, j) > self.size
                ):
                    break
                total += units[j].tokens
                j += 1
            if j == i:  # a unit is never larger than size, but be safe
                total, j = units[i].tokens, i + 1
            spans.append((units[i].start, units[j - 1].end, total, any(u.glued for u in units[i:j])))
            if j >= len(units):
                break
            # The next chunk repeats the last whole units that fit in the overlap.
            back, carried = j, 0
            while back - 1 > i and not units[back].hard and carried + units[back - 1].tokens <= self.overlap:
                back -= 1
                carried += units[back].tokens
            i = back
        return spans

    @staticmethod
    def _paragraph_tokens(units: list[_Unit], j: int) -> int:
        total, k = 0, j
        while k < len(units) and units[k].paragraph == units[j].paragraph:
            total += units[k].tokens
            k += 1
        return total

    def _fit(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Re-measure the chunk on its own text (what the embedder sees); halve it if over the limit."""
        trimmed = _spans(text, _NEVER, start, end)
        if not trimmed:
            return []
        start, end = trimmed[0]
        tokens = self.tokenizer.count([text[start:end]])[0]
        if tokens <= self.size or end - start < 2:
            return [(start, end, tokens)]
        middle = (start + end) // 2
        space = text.rfind(" ", start + 1, middle + 1)
        middle = space if space > start else middle
        return self._fit(text, start, middle) + self._fit(text, middle, end)


class _Starts:
    """Token start offsets as a sequence for ``bisect``, without copying the offset list."""

    __slots__ = ("_offsets",)

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> int:
        return self._offsets[index][0]
