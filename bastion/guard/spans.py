"""Overlap arithmetic on findings, in time linear (or n log n) in their number.

Detectors resolve overlapping candidates greedily (the stronger one wins) and drop findings that
fall inside another scanner's (a phone-shaped run of digits inside an API key). Comparing every
finding with every kept one is quadratic, and a prompt of a few megabytes can hold a hundred
thousand findings; these helpers sort once and answer each question with a bisection or a scan
of an occupancy map instead.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from bastion.guard.models import Finding

#: Up to this many findings the plain pairwise loop is cheaper than building an index.
_SMALL = 16


class _OverlapIndex:
    """Answers "does [start, end) overlap any of these findings?" with one bisection."""

    __slots__ = ("_max_end", "_starts")

    def __init__(self, findings: Sequence[Finding]) -> None:
        ordered = sorted(findings, key=lambda f: f.start)
        self._starts = [f.start for f in ordered]
        # Running maximum of the ends: the findings starting before a point reach at most this far.
        max_end: list[int] = []
        reach = -1
        for finding in ordered:
            reach = max(reach, finding.end)
            max_end.append(reach)
        self._max_end = max_end

    def hits(self, start: int, end: int) -> bool:
        index = bisect_left(self._starts, end) - 1  # the last finding starting before ``end``
        return index >= 0 and self._max_end[index] > start


def drop_overlapping(findings: list[Finding], stronger: Sequence[Finding]) -> list[Finding]:
    """``findings`` without those that overlap any of ``stronger``."""
    if not stronger or not findings:
        return findings
    if len(stronger) <= _SMALL:
        return [f for f in findings if all(f.end <= s.start or s.end <= f.start for s in stronger)]
    index = _OverlapIndex(stronger)
    return [f for f in findings if not index.hits(f.start, f.end)]


def keep_disjoint(ordered: Iterable[Finding]) -> list[Finding]:
    """Greedy resolution: walk ``ordered`` (strongest first) and keep each finding that overlaps
    none kept so far. Returns the kept findings by position.

    Kept findings are disjoint, so an occupancy map over the covered range answers the overlap
    question with one ``bytearray.find`` per candidate; the total work is bounded by the candidates'
    lengths, which is linear in the text for detectors whose own matches do not overlap.
    """
    candidates = list(ordered)
    if len(candidates) <= _SMALL:
        kept: list[Finding] = []
        for candidate in candidates:
            if all(candidate.end <= k.start or k.end <= candidate.start for k in kept):
                kept.append(candidate)
        kept.sort(key=lambda f: f.start)
        return kept
    low = min(f.start for f in candidates)
    high = max(f.end for f in candidates)
    occupied = bytearray(high - low)
    kept = []
    for candidate in candidates:
        start, end = candidate.start - low, candidate.end - low
        if end <= start:
            kept.append(candidate)  # an empty span covers nothing
            continue
        if occupied.find(1, start, end) >= 0:
            continue
        occupied[start:end] = b"\x01" * (end - start)
        kept.append(candidate)
    kept.sort(key=lambda f: f.start)
    return kept
