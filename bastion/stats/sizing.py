"""Sample size from a JSON-shaped request, shared by ``bastion experiments sample-size`` and
``POST /api/v1/admin/experiments/sample-size``: the validation and the answer's shape live here once.

Fields: ``baseline`` (control's rate, or its mean with ``sd``), ``mde`` (absolute, or relative with
``relative: true``), ``alpha`` (0.05), ``power`` (0.8), ``method`` for two proportions (``pooled``,
``unpooled``, ``arcsine``, ``continuity``), ``sd`` for a continuous metric (exact noncentral t),
``sequential`` (size for the always-valid test) and its ``tuning`` (5,000)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bastion.stats.errors import StatsError
from bastion.stats.power import (
    PROPORTION_METHODS,
    SampleSize,
    mean_sample_size,
    proportion_sample_size,
    sequential_sample_size,
)
from bastion.stats.sequential import DEFAULT_TUNING

FIELDS = frozenset({"baseline", "mde", "relative", "alpha", "power", "method", "sd", "sequential", "tuning"})


def sample_size(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    method: str = "pooled",
    sd: float | None = None,
    sequential: bool = False,
    tuning: float = DEFAULT_TUNING,
) -> SampleSize:
    """Units per arm for a two-arm test: sequential, continuous (with ``sd``) or two proportions.
    Inputs the formulas cannot take (overflowing or vanishing values) are a ``StatsError``."""
    try:
        return _sample_size(baseline, mde, relative, alpha, power, method, sd, sequential, tuning)
    except (ArithmeticError, ValueError) as exc:
        raise StatsError(f"no sample size for these inputs ({exc})") from None


def _sample_size(
    baseline: float,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    method: str,
    sd: float | None,
    sequential: bool,
    tuning: float,
) -> SampleSize:
    if sequential:
        return sequential_sample_size(baseline, mde, sd=sd, relative=relative, alpha=alpha, power=power, tuning=tuning)
    if sd is not None:
        return mean_sample_size(baseline, mde, sd, relative=relative, alpha=alpha, power=power)
    if method not in PROPORTION_METHODS:
        raise StatsError(f"method must be one of {', '.join(PROPORTION_METHODS)} (got {method!r})")
    return proportion_sample_size(baseline, mde, relative=relative, alpha=alpha, power=power, method=method)


def size_json(size: SampleSize) -> dict[str, Any]:
    return {
        "per_arm": size.per_arm,
        "total": 2 * size.per_arm,
        "method": size.method,
        "baseline": round(size.baseline, 12),
        "treatment": round(size.treatment, 12),
        "alpha": size.alpha,
        "power": size.power,
    }


def _number(data: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StatsError(f"{key} must be a finite number (got {value!r})")
    return float(value)


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise StatsError(f"{key} must be true or false (got {value!r})")
    return value


def sample_size_request(data: object) -> dict[str, Any]:
    """The answer to a JSON request (the fields above); ``StatsError`` names what is wrong."""
    if not isinstance(data, Mapping):
        raise StatsError("the request must be a JSON object")
    unknown = set(data) - FIELDS
    if unknown:
        raise StatsError(f"unknown field(s): {', '.join(sorted(unknown))}")
    for key in ("baseline", "mde"):
        if key not in data:
            raise StatsError(f"{key} is required")
    method = data.get("method", "pooled")
    if not isinstance(method, str):
        raise StatsError(f"method must be one of {', '.join(PROPORTION_METHODS)} (got {method!r})")
    size = sample_size(
        _number(data, "baseline", None) or 0.0,
        _number(data, "mde", None) or 0.0,
        relative=_flag(data, "relative"),
        alpha=_number(data, "alpha", 0.05) or 0.0,
        power=_number(data, "power", 0.8) or 0.0,
        method=method,
        sd=_number(data, "sd", None),
        sequential=_flag(data, "sequential"),
        tuning=_number(data, "tuning", DEFAULT_TUNING) or 0.0,
    )
    return size_json(size)
