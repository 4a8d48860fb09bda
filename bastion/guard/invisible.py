"""Invisible text: characters a human reviewer cannot see but a model reads.

Reported types:

* ``ZERO_WIDTH``: zero-width spaces/joiners, word joiner, soft hyphen, Hangul fillers and other
  format characters used to split trigger words or hide content;
* ``BIDI_CONTROL``: embeddings, overrides and isolates (the "Trojan Source" trick), and direction
  marks in text that has no right-to-left script;
* ``TAG_CHARACTERS``: the U+E0000 block, which spells invisible ASCII (``ASCII smuggling``);
* ``VARIATION_SELECTORS``: runs of variation selectors, which can encode arbitrary bytes after a
  visible character (``emoji smuggling``);
* ``PRIVATE_USE``: private-use code points, which have no agreed meaning.

Legitimate uses are not flagged: zero-width joiners inside emoji sequences or scripts that need
them (Arabic, Indic, Khmer, Thai...), direction marks in right-to-left text, single variation
selectors after emoji, and the tag sequences of subdivision flags.

Smuggled tag and variation-selector payloads are decoded into ``hidden_text`` so the injection
scanner can read what the model would have read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import bastion.guard.budget as budget
import bastion.guard.runs as runs
from bastion.guard.models import Finding
from bastion.guard.normalize import INVISIBLE_CLASS
from bastion.guard.segments import SEGMENT_CHARS

_CANDIDATE_RE = re.compile(f"[{INVISIBLE_CLASS}\ue000-\uf8ff\ufe00-\ufe0f\U000f0000-\U0010ffff]+")
_RTL_RE = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

_ZW_JOINERS = frozenset("\u200b\u200c\u200d\u2060")
_DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BLACK_FLAG = "\U0001f3f4"
_CANCEL_TAG = "\U000e007f"


def _classify(ch: str) -> str:
    code = ord(ch)
    if 0xE0000 <= code <= 0xE007F:
        return "TAG_CHARACTERS"
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return "VARIATION_SELECTORS"
    if 0xE000 <= code <= 0xF8FF or code >= 0xF0000:
        return "PRIVATE_USE"
    if ch in _BIDI_CONTROLS or ch in _DIRECTION_MARKS:
        return "BIDI_CONTROL"
    return "ZERO_WIDTH"


def _complex_script(ch: str) -> bool:
    """Scripts and symbols where joiners and zero-width spaces are part of normal writing."""
    return ord(ch) >= 0x0590


@dataclass(slots=True)
class InvisibleScan:
    findings: list[Finding] = field(default_factory=list)
    #: Text smuggled in tag characters or variation selectors, decoded.
    hidden_text: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.findings)


def scan_invisible(text: str) -> InvisibleScan:
    if text.isascii():
        return InvisibleScan()
    result = InvisibleScan()
    has_rtl: bool | None = None
    hidden: list[str] = []
    for match in _candidates(text):
        start, end = match.span()
        run = match.group()
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        pieces: list[tuple[str, int, int]] = []
        i = 0
        while i < len(run):
            kind = _classify(run[i])
            j = i + 1
            while j < len(run) and _classify(run[j]) == kind:
                j += 1
            pieces.append((kind, start + i, start + j))
            i = j
        for kind, p_start, p_end in pieces:
            chunk = text[p_start:p_end]
            if kind == "VARIATION_SELECTORS":
                # One selector after a visible character is ordinary emoji/CJK presentation.
                if len(chunk) == 1:
                    continue
                hidden.append(_decode_variation_selectors(chunk))
            elif kind == "TAG_CHARACTERS":
                if before == _BLACK_FLAG and chunk.endswith(_CANCEL_TAG) and len(chunk) <= 7:
                    continue  # subdivision flag, e.g. England
                hidden.append("".join(chr(ord(c) - 0xE0000) for c in chunk if 0xE0020 <= ord(c) <= 0xE007E))
            elif kind == "ZERO_WIDTH":
                if p_start == 0 and chunk == "\ufeff":
                    continue  # byte-order mark
                if (
                    all(c in _ZW_JOINERS for c in chunk)
                    and before
                    and after
                    and _complex_script(before)
                    and _complex_script(after)
                ):
                    continue
            elif kind == "BIDI_CONTROL" and all(c in _DIRECTION_MARKS for c in chunk):
                if has_rtl is None:
                    has_rtl = any(_RTL_RE.search(text, pos, pos + SEGMENT_CHARS) for pos in _positions(text))
                if has_rtl:
                    continue
            result.findings.append(Finding(kind, p_start, p_end, 1.0))
    result.hidden_text = "".join(h for h in hidden if h)
    return result


def _positions(text: str) -> range:
    return range(0, len(text), SEGMENT_CHARS)


def _candidates(text: str) -> Iterator[re.Match[str]]:
    """The runs of candidate characters, searched a segment at a time (one search over megabytes
    holds the interpreter for its whole length) with the scan budget checked in between. A run
    longer than a segment is reported in pieces.

    Every candidate is a non-ASCII character, so in a text of one segment with few non-ASCII runs
    (Latin text with some accents) the regex looks inside those runs only."""
    if len(text) <= SEGMENT_CHARS:
        spans = runs.non_ascii_runs(text)
        if len(spans) <= runs.FEW_RUNS:
            budget.check()
            for start, end in spans:
                yield from _CANDIDATE_RE.finditer(text, start, end)
            return
    for pos in _positions(text):
        budget.check()
        yield from _CANDIDATE_RE.finditer(text, pos, pos + SEGMENT_CHARS)


def _decode_variation_selectors(chunk: str) -> str:
    data = bytearray()
    for ch in chunk:
        code = ord(ch)
        if 0xFE00 <= code <= 0xFE0F:
            data.append(code - 0xFE00)
        elif 0xE0100 <= code <= 0xE01EF:
            data.append(code - 0xE0100 + 16)
    decoded = data.decode("utf-8", errors="ignore")
    printable = sum(ch.isprintable() for ch in decoded)
    return decoded if decoded and printable >= 0.8 * len(decoded) else ""


def remove_spans(text: str, findings: list[Finding]) -> str:
    """Delete the characters covered by ``findings`` (invisible text is stripped, not replaced)."""
    if not findings:
        return text
    pieces: list[str] = []
    last = 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start > last:
            pieces.append(text[last : finding.start])
        last = max(last, finding.end)
    pieces.append(text[last:])
    return "".join(pieces)
