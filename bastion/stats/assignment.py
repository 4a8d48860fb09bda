"""Deterministic assignment that agrees with GrowthBook's SDKs.

A unit (user, session, key) is hashed with the experiment's seed to a number in [0, 1); the
experiment's weights and coverage cut [0, 1) into one range per variant; the unit gets the variant
whose range holds its number, or none when it falls in the uncovered part of a range. Hash v2 is
``fnv1a32(str(fnv1a32(seed + unit_id))) % 10000 / 10000``; v1 (``fnv1a32(unit_id + seed) % 1000 /
1000``) exists for namespaces. The same (seed, unit) lands in the same variant in every process,
on every machine, and in a GrowthBook SDK given the same experiment. FNV-1a runs over UTF-16 code
units as the JavaScript SDK does (for characters outside the Basic Multilingual Plane the Python
SDK, which hashes code points, disagrees with its own JavaScript reference).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence

from bastion.stats.errors import StatsError

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


_NATIVE_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def _code_units(text: str) -> Iterable[int]:
    if text.isascii():
        return map(ord, text)
    return array("H", text.encode(_NATIVE_UTF16, "surrogatepass"))


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``text``."""
    h = _FNV_OFFSET
    for unit in _code_units(text):
        h = ((h ^ unit) * _FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook's hash of ``value`` under ``seed`` to [0, 1); None for an unknown version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(count: int) -> list[float]:
    """``count`` equal weights (none for a count below 1)."""
    return [1.0 / count] * count if count >= 1 else []


def bucket_ranges(
    count: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """One [start, end) range per variant, as GrowthBook's ``getBucketRanges``.

    Coverage is clamped to [0, 1]; weights of the wrong length, or not summing to 1 within 0.01,
    fall back to equal weights. Each variant's range starts at the cumulative weight before it and
    covers ``coverage`` of its weight, so raising the coverage never moves an assigned unit.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    chosen = list(weights) if weights is not None else equal_weights(count)
    if len(chosen) != count or not 0.99 <= sum(chosen) <= 1.01:
        chosen = equal_weights(count)
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bounds: tuple[float, float]) -> bool:
    """Whether ``n`` is in the half-open range ``[start, end)``."""
    return bounds[0] <= n < bounds[1]


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The index of the range holding ``n``, or -1 (outside coverage)."""
    for index, bounds in enumerate(ranges):
        if in_range(n, bounds):
            return index
    return -1


def in_namespace(unit_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether the unit falls in the namespace's [start, end) slice (hash v1 of ``"__" + name``)."""
    n = gb_hash("__" + namespace[0], unit_id, 1)
    return n is not None and namespace[1] <= n < namespace[2]


def assign(
    seed: str,
    unit_id: str,
    count: int,
    *,
    weights: Sequence[float] | None = None,
    coverage: float = 1.0,
    hash_version: int = 2,
) -> int:
    """The variant index for ``unit_id`` in an experiment of ``count`` variants, or -1 (not in it).

    As GrowthBook runs an experiment: a unit without an id, or an experiment with fewer than two
    variants, is not in it; otherwise the unit's hash picks the range it falls in (the seed is the
    experiment key unless the experiment sets one).
    """
    if count < 0:
        raise StatsError("the number of variants must not be negative")
    if not unit_id or count < 2:
        return -1
    n = gb_hash(seed, unit_id, hash_version)
    if n is None:
        raise StatsError(f"unknown hash version {hash_version} (1 or 2)")
    return choose_variation(n, bucket_ranges(count, coverage, weights))
