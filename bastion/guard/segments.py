"""Long texts are scanned in overlapping segments.

Each detector is linear in its input, but one regular-expression call over megabytes holds the
interpreter lock for as long as it runs, and a deadline can only be checked between calls. So a
text longer than ``SEGMENT_CHARS`` is cut into segments of about that size, at whitespace where
there is some, each overlapping the previous one by ``OVERLAP_CHARS`` so that anything shorter than
the overlap (every PII entity, every secret but a private key of many kilobytes, an injection
phrase) lies wholly inside at least one segment. Detectors merge what the segments found as they
merge overlapping findings anyway, and check the scan budget between segments.
"""

from __future__ import annotations

SEGMENT_CHARS = 65_536
OVERLAP_CHARS = 8_192
# How far from an ideal cut point a whitespace character is looked for.
_SNAP_CHARS = 256


def segment_bounds(text: str, size: int = SEGMENT_CHARS, overlap: int = OVERLAP_CHARS) -> list[tuple[int, int]]:
    """``(start, end)`` of the segments of ``text``: one segment when it is not longer than ``size``."""
    length = len(text)
    if length <= size:
        return [(0, length)]
    bounds: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + size
        if end >= length:
            bounds.append((start, length))
            return bounds
        end = _snap_back(text, end, start + overlap + 1)
        bounds.append((start, end))
        start = _snap_forward(text, end - overlap, end - overlap // 2)


def _snap_back(text: str, end: int, floor: int) -> int:
    """A cut just after the last whitespace before ``end`` (not before ``floor``), else ``end``."""
    for space in (" ", "\n"):
        index = text.rfind(space, max(floor, end - _SNAP_CHARS), end)
        if index >= 0:
            return index + 1
    return end


def _snap_forward(text: str, start: int, ceiling: int) -> int:
    """A start just after the first whitespace at or after ``start`` (before ``ceiling``), else ``start``."""
    for space in (" ", "\n"):
        index = text.find(space, start, min(ceiling, start + _SNAP_CHARS))
        if index >= 0:
            return index + 1
    return start
