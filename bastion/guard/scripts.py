"""The dominant writing system of a text, from code-point ranges (no language model needed).

Used by training to spot scripts that occur on one side of the labels only, and for the
script-only baseline the model card reports.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

# (first code point, script) in ascending order; a code point belongs to the last range starting at
# or before it. Ranges not listed fall into "Other".
_RANGES: tuple[tuple[int, str], ...] = (
    (0x0000, "Common"),
    (0x0041, "Latin"),
    (0x005B, "Common"),
    (0x0061, "Latin"),
    (0x007B, "Common"),
    (0x00C0, "Latin"),
    (0x0250, "Common"),
    (0x0370, "Greek"),
    (0x0400, "Cyrillic"),
    (0x0530, "Armenian"),
    (0x0590, "Hebrew"),
    (0x0600, "Arabic"),
    (0x0700, "Other"),
    (0x0900, "Devanagari"),
    (0x0980, "Bengali"),
    (0x0A00, "Other"),
    (0x0C00, "Telugu"),
    (0x0C80, "Other"),
    (0x0E00, "Thai"),
    (0x0E80, "Other"),
    (0x10A0, "Georgian"),
    (0x1100, "Hangul"),
    (0x1200, "Other"),
    (0x1E00, "Latin"),
    (0x1F00, "Greek"),
    (0x2000, "Common"),
    (0x2E80, "Han"),
    (0x3040, "Kana"),
    (0x3100, "Other"),
    (0x3130, "Hangul"),
    (0x3190, "Other"),
    (0x3400, "Han"),
    (0xA000, "Other"),
    (0xAC00, "Hangul"),
    (0xD7B0, "Other"),
    (0xF900, "Han"),
    (0xFB00, "Other"),
    (0xFF00, "Common"),
    (0xFF21, "Latin"),
    (0xFF3B, "Common"),
    (0xFF41, "Latin"),
    (0xFF5B, "Common"),
    (0xFF66, "Kana"),
    (0xFFA0, "Hangul"),
    (0xFFE0, "Common"),
    (0x10000, "Other"),
)
_STARTS = [start for start, _ in _RANGES]
SCRIPTS: tuple[str, ...] = tuple(sorted({name for _, name in _RANGES}))


def script_of(char: str) -> str:
    return _RANGES[bisect_right(_STARTS, ord(char)) - 1][1]


def script_counts(text: str) -> Counter[str]:
    """Letters per script ("Common" — digits, spaces, punctuation — is not counted)."""
    counts: Counter[str] = Counter()
    if text.isascii():
        letters = sum(1 for c in text if c.isalpha())
        if letters:
            counts["Latin"] = letters
        return counts
    for char in text:
        script = script_of(char)
        if script != "Common":
            counts[script] += 1
    return counts


def dominant_script(text: str) -> str:
    """The script with the most letters; Japanese kana next to Han count as "Kana"."""
    counts = script_counts(text)
    if not counts:
        return "Common"
    if counts.get("Kana") and counts.get("Han"):
        counts["Kana"] += counts["Han"]
        del counts["Han"]
    return counts.most_common(1)[0][0]
