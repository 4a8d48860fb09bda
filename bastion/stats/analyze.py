"""Analyse an experiment given as summary statistics (the ``bastion experiments analyze`` format).

Input, a JSON object::

    {"metric": "binomial" | "mean", "method": "frequentist" | "bayesian" | "sequential",
     "alpha": 0.05, "relative": true,
     "arms": [{"name": "control", "n": 1000, "sum": 100, "sum_squares": 100}, ...]}

The first arm is the control. Optional: ``weights`` (the intended split, for the SRM check; equal by
default), ``tuning`` (sequential, default 5000), ``inverse`` (lower is better), ``correction``
(``"holm"`` or ``"benjamini-hochberg"``, adjusting the p-values across the treatment arms). The
output gives, for every treatment arm, ``expected`` (the effect), ``ci`` and ``p_value``
(frequentist, sequential) or ``chance_to_win`` and ``risk`` ([control, treatment]) (Bayesian), and
for the experiment ``srm_p_value``. Bad input raises ``StatsError`` with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from bastion.stats.bayesian import bayesian_test, beta_binomial_chance_to_win
from bastion.stats.errors import StatsError
from bastion.stats.frequentist import welch_test
from bastion.stats.multiple import benjamini_hochberg, holm
from bastion.stats.sequential import DEFAULT_TUNING, sequential_test
from bastion.stats.srm import SRM_THRESHOLD, srm_p_value
from bastion.stats.summary import ArmStats, MetricKind

Method = Literal["frequentist", "bayesian", "sequential"]
_KEYS = {"metric", "method", "alpha", "relative", "arms", "weights", "tuning", "inverse", "correction"}
_ARM_KEYS = {"name", "n", "sum", "sum_squares"}
_CORRECTIONS = ("holm", "benjamini-hochberg")
PEEKING_WARNING = (
    "fixed-horizon p-values hold for one look at the planned sample size; "
    "deciding on repeated looks inflates false positives (use method: sequential)"
)
#: Beyond this many successes the exact Beta-Binomial sum is skipped (its cost grows with them).
_EXACT_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    n: int
    total: float
    stats: ArmStats


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    metric: MetricKind
    method: Method
    alpha: float
    relative: bool
    arms: tuple[Arm, ...]
    weights: tuple[float, ...] | None
    tuning: float
    inverse: bool
    correction: str | None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StatsError(f"{where} must be a finite number (got {value!r})")
    return float(value)


def _choice(data: Mapping[str, Any], key: str, options: tuple[str, ...], default: str | None = None) -> str:
    value = data.get(key, default)
    if value not in options:
        raise StatsError(f"{key} must be one of {', '.join(repr(o) for o in options)} (got {value!r})")
    return cast(str, value)


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise StatsError(f"{key} must be true or false (got {value!r})")
    return value


def _arm(index: int, raw: object, metric: MetricKind) -> Arm:
    if not isinstance(raw, Mapping):
        raise StatsError(f"arms[{index}] must be an object with n, sum and sum_squares")
    unknown = set(raw) - _ARM_KEYS
    if unknown:
        raise StatsError(f"arms[{index}] has unknown field(s): {', '.join(sorted(unknown))}")
    name = raw.get("name", f"arm {index}")
    if not isinstance(name, str) or not name:
        raise StatsError(f"arms[{index}].name must be a non-empty string")
    if "n" not in raw or "sum" not in raw:
        raise StatsError(f"arms[{index}] ({name}) needs n and sum")
    n = _number(raw["n"], f"arms[{index}].n")
    if n < 0 or n != int(n):
        raise StatsError(f"arms[{index}].n must be a non-negative integer (got {raw['n']!r})")
    total = _number(raw["sum"], f"arms[{index}].sum")
    if metric == "binomial" and total != int(total):
        raise StatsError(f"arms[{index}].sum must be a whole number of conversions for a binomial metric (got {total})")
    squares = raw.get("sum_squares")
    sum_squares = None if squares is None else _number(squares, f"arms[{index}].sum_squares")
    try:
        stats = ArmStats.from_summary(metric, int(n), total, sum_squares)
    except StatsError as exc:
        raise StatsError(f"arms[{index}] ({name}): {exc}") from None
    return Arm(name=name, n=int(n), total=total, stats=stats)


def parse_request(data: object) -> AnalysisRequest:
    """Validate the analysis file's JSON; every problem is a one-line ``StatsError``."""
    if not isinstance(data, Mapping):
        raise StatsError("the analysis file must hold a JSON object")
    unknown = set(data) - _KEYS
    if unknown:
        raise StatsError(f"unknown field(s): {', '.join(sorted(unknown))}")
    metric = cast(MetricKind, _choice(data, "metric", ("binomial", "mean")))
    method = cast(Method, _choice(data, "method", ("frequentist", "bayesian", "sequential"), "frequentist"))
    alpha = _number(data.get("alpha", 0.05), "alpha")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be between 0 and 1 (got {alpha})")
    raw_arms = data.get("arms")
    if not isinstance(raw_arms, list) or len(raw_arms) < 2:
        raise StatsError("arms must be a list of at least 2 arms (the first is the control)")
    arms = tuple(_arm(i, raw, metric) for i, raw in enumerate(raw_arms))
    if len({arm.name for arm in arms}) != len(arms):
        raise StatsError("arm names must be unique")
    weights = data.get("weights")
    if weights is not None:
        if not isinstance(weights, list) or len(weights) != len(arms):
            raise StatsError("weights must be a list with one number per arm")
        weights = tuple(_number(w, "weights[]") for w in weights)
    tuning = _number(data.get("tuning", DEFAULT_TUNING), "tuning")
    if tuning <= 0:
        raise StatsError("tuning must be positive")
    correction = data.get("correction")
    if correction is not None:
        correction = _choice(data, "correction", _CORRECTIONS)
    return AnalysisRequest(
        metric=metric,
        method=method,
        alpha=alpha,
        relative=_flag(data, "relative", True),
        arms=arms,
        weights=weights,
        tuning=tuning,
        inverse=_flag(data, "inverse", False),
        correction=correction,
    )


def _compare(request: AnalysisRequest, control: Arm, arm: Arm) -> dict[str, Any]:
    a, b = control.stats, arm.stats
    out: dict[str, Any] = {"name": arm.name, "n": arm.n, "mean": b.mean}
    if request.method == "bayesian":
        result = bayesian_test(a, b, relative=request.relative, alpha=request.alpha, inverse=request.inverse)
        out.update(expected=result.expected, ci=list(result.ci), chance_to_win=result.chance_to_win)
        out["risk"] = list(result.risk)
        if request.metric == "binomial" and max(control.total, arm.total) <= _EXACT_LIMIT:
            exact = beta_binomial_chance_to_win(int(control.total), control.n, int(arm.total), arm.n)
            out["exact_chance_to_win"] = 1.0 - exact if request.inverse else exact
        return out
    if request.method == "sequential":
        test = sequential_test(a, b, relative=request.relative, alpha=request.alpha, tuning=request.tuning)
    else:
        test = welch_test(a, b, relative=request.relative, alpha=request.alpha)
    out.update(expected=test.expected, ci=list(test.ci), p_value=test.p_value)
    return out


def analyze(data: object) -> dict[str, Any]:
    """The analysis of a parsed JSON document, as a JSON-ready dict."""
    request = parse_request(data)
    control, *treatments = request.arms
    srm = srm_p_value([arm.n for arm in request.arms], request.weights)
    variants: list[dict[str, Any]] = []
    for arm in treatments:
        try:
            variants.append(_compare(request, control, arm))
        except StatsError as exc:
            variants.append({"name": arm.name, "n": arm.n, "mean": arm.stats.mean, "error": str(exc)})
    tested = [v for v in variants if "p_value" in v]
    if request.correction and tested:
        adjust = holm if request.correction == "holm" else benjamini_hochberg
        for variant, adjusted in zip(tested, adjust([v["p_value"] for v in tested]), strict=True):
            variant["p_value_adjusted"] = float(adjusted)
    result: dict[str, Any] = {
        "metric": request.metric,
        "method": request.method,
        "alpha": request.alpha,
        "relative": request.relative,
        "control": {"name": control.name, "n": control.n, "mean": control.stats.mean},
        "variants": variants,
        "srm_p_value": srm,
        "srm_mismatch": srm < SRM_THRESHOLD,
    }
    if request.method == "sequential":
        result["tuning"] = request.tuning
    elif request.method == "frequentist":
        result["warning"] = PEEKING_WARNING
    if request.correction:
        result["correction"] = request.correction
    return result
