"""Results of an experiment: per metric and variant the counts, means and effects with intervals,
p-values or chance to win and risk, the sample-ratio check, corrected p-values and a decision hint;
as JSON (``results``) and as a readable text report (``text_report``).

The decision reads the **first** metric of the experiment (its primary metric); the others are
guardrails shown beside it. ``ship`` names the variant to ship, ``stop`` means keep the control
(or fix the experiment, on a sample-ratio mismatch), ``keep running`` means not enough evidence yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bastion.experiments.metrics import METRICS, VariantData
from bastion.experiments.model import Experiment
from bastion.stats.analyze import PEEKING_WARNING
from bastion.stats.bayesian import bayesian_test
from bastion.stats.errors import StatsError
from bastion.stats.frequentist import welch_test
from bastion.stats.multiple import benjamini_hochberg, holm
from bastion.stats.ratio import ratio_arm
from bastion.stats.sequential import sequential_test
from bastion.stats.srm import SRM_THRESHOLD, srm_p_value
from bastion.stats.summary import ArmStats

ALPHA: Final = 0.05
#: Units every arm needs before the report suggests shipping or stopping.
MIN_UNITS: Final = 100
#: Bayesian: ship when the chance to win is at least this; stop when every arm's is at most 1 - this.
WIN_PROBABILITY: Final = 0.95


def _arm(data: VariantData, metric: str) -> ArmStats | None:
    try:
        return ratio_arm(data.sums[metric])
    except StatsError:
        return None


def _compare(experiment: Experiment, metric: str, control: ArmStats, arm: ArmStats) -> dict[str, Any]:
    inverse = METRICS[metric].inverse
    relative = control.mean != 0
    out: dict[str, Any] = {"relative": relative}
    if experiment.method == "bayesian":
        result = bayesian_test(control, arm, relative=relative, alpha=ALPHA, inverse=inverse)
        out.update(
            expected=result.expected, ci=list(result.ci), chance_to_win=result.chance_to_win, risk=list(result.risk)
        )
        return out
    if experiment.method == "sequential":
        test = sequential_test(control, arm, relative=relative, alpha=ALPHA)
    else:
        test = welch_test(control, arm, relative=relative, alpha=ALPHA)
    out.update(expected=test.expected, ci=list(test.ci), p_value=test.p_value)
    return out


def _metric(experiment: Experiment, metric: str, data: Sequence[VariantData]) -> dict[str, Any]:
    definition = METRICS[metric]
    arms = [_arm(d, metric) for d in data]
    variants = [
        {"name": d.name, "units": d.sums[metric].n, "mean": arm.mean if arm is not None else None}
        for d, arm in zip(data, arms, strict=True)
    ]
    comparisons: list[dict[str, Any]] = []
    control = arms[0]
    for d, arm in zip(data[1:], arms[1:], strict=True):
        entry: dict[str, Any] = {"variant": d.name}
        if control is None or arm is None:
            entry["error"] = "not enough data (every arm needs at least 2 units with a value)"
        else:
            try:
                entry.update(_compare(experiment, metric, control, arm))
            except StatsError as exc:
                entry["error"] = str(exc)
        comparisons.append(entry)
    return {
        "name": metric,
        "kind": definition.kind,
        "better": "lower" if definition.inverse else "higher",
        "variants": variants,
        "comparisons": comparisons,
    }


def _correct(experiment: Experiment, metrics: list[dict[str, Any]]) -> None:
    """Adjusted p-values across every metric and variant (Holm or Benjamini-Hochberg)."""
    tested = [c for m in metrics for c in m["comparisons"] if "p_value" in c]
    if not tested:
        return
    adjust = holm if experiment.correction == "holm" else benjamini_hochberg
    for comparison, adjusted in zip(tested, adjust([c["p_value"] for c in tested]), strict=True):
        comparison["p_value_adjusted"] = float(adjusted)
        comparison["significant"] = bool(adjusted < ALPHA)


def _improves(comparison: dict[str, Any], inverse: bool) -> bool:
    return bool(comparison["expected"] < 0) if inverse else bool(comparison["expected"] > 0)


def decide(experiment: Experiment, primary: dict[str, Any], srm: dict[str, Any] | None) -> dict[str, Any]:
    """keep running / ship (a variant) / stop, with the reason, from the primary metric."""
    if srm is not None and srm["mismatch"]:
        return {
            "action": "stop",
            "variant": None,
            "reason": "sample ratio mismatch: assignment or logging is broken; fix it before trusting any effect",
        }
    small = [v["name"] for v in primary["variants"] if v["units"] < MIN_UNITS]
    if small:
        return {
            "action": "keep running",
            "variant": None,
            "reason": f"{', '.join(small)} below {MIN_UNITS} units on {primary['name']}",
        }
    inverse = primary["better"] == "lower"
    usable = [c for c in primary["comparisons"] if "error" not in c]
    if not usable:
        return {"action": "keep running", "variant": None, "reason": f"{primary['name']} cannot be compared yet"}
    if experiment.method == "bayesian":
        best = max(usable, key=lambda c: c["chance_to_win"])
        if best["chance_to_win"] >= WIN_PROBABILITY:
            return {
                "action": "ship",
                "variant": best["variant"],
                "reason": f"{best['chance_to_win']:.1%} chance to beat control on {primary['name']} "
                f"(risk {best['risk'][1]:.4g})",
            }
        if all(c["chance_to_win"] <= 1 - WIN_PROBABILITY for c in usable):
            return {
                "action": "stop",
                "variant": None,
                "reason": f"every variant is at least {WIN_PROBABILITY:.0%} likely to be worse than control",
            }
        return {
            "action": "keep running",
            "variant": None,
            "reason": f"best chance to win on {primary['name']} is {best['chance_to_win']:.1%}",
        }
    winners = [c for c in usable if c.get("significant") and _improves(c, inverse)]
    if winners:
        best = max(winners, key=lambda c: abs(c["expected"]))
        return {
            "action": "ship",
            "variant": best["variant"],
            "reason": f"significant improvement on {primary['name']} (adjusted p = {best['p_value_adjusted']:.3g})",
        }
    if all(c.get("significant") and not _improves(c, inverse) for c in usable):
        return {
            "action": "stop",
            "variant": None,
            "reason": f"every variant is significantly worse on {primary['name']}",
        }
    return {"action": "keep running", "variant": None, "reason": f"no significant difference on {primary['name']} yet"}


def results(experiment: Experiment, data: Sequence[VariantData]) -> dict[str, Any]:
    """The experiment's results as a JSON-ready dict."""
    metrics = [_metric(experiment, name, data) for name in experiment.metrics]
    _correct(experiment, metrics)
    units = [d.units for d in data]
    srm: dict[str, Any] | None = None
    if not experiment.bandit:  # a bandit's weights move, so no fixed split to check against
        p = srm_p_value(units, list(experiment.weights)) if sum(units) else 1.0
        srm = {"p_value": p, "mismatch": p < SRM_THRESHOLD, "weights": list(experiment.weights)}
    out: dict[str, Any] = {
        "object": "experiment.results",
        "experiment": {
            "id": experiment.id,
            "name": experiment.name,
            "status": experiment.status,
            "hypothesis": experiment.hypothesis,
            "unit": experiment.unit,
        },
        "method": experiment.method,
        "alpha": ALPHA,
        "correction": experiment.correction,
        "control": data[0].name,
        "units": {d.name: d.units for d in data},
        "requests": {d.name: d.requests for d in data},
        "srm": srm,
        "metrics": metrics,
        "decision": decide(experiment, metrics[0], srm),
    }
    if experiment.method == "frequentist":
        out["warning"] = PEEKING_WARNING
    return out


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _effect(comparison: dict[str, Any]) -> str:
    if "error" in comparison:
        return str(comparison["error"])
    scale, unit = (100.0, "%") if comparison["relative"] else (1.0, "")
    low, high = comparison["ci"]
    text = f"{comparison['expected'] * scale:+.3g}{unit} [{low * scale:+.3g}{unit}, {high * scale:+.3g}{unit}]"
    if "chance_to_win" in comparison:
        risk = comparison["risk"]
        return f"{text}  chance to win {comparison['chance_to_win']:.1%}  risk {risk[0]:.3g} / {risk[1]:.3g}"
    adjusted = comparison.get("p_value_adjusted")
    tail = f" (adjusted {adjusted:.3g})" if adjusted is not None else ""
    return f"{text}  p = {comparison['p_value']:.3g}{tail}"


def text_report(result: dict[str, Any]) -> str:
    """A readable report of ``results``'s output (for the CLI and the report endpoint)."""
    experiment = result["experiment"]
    lines = [
        f"Experiment {experiment['name']} ({experiment['status']}, unit: {experiment['unit']}, "
        f"method: {result['method']})",
    ]
    if experiment["hypothesis"]:
        lines.append(f"Hypothesis: {experiment['hypothesis']}")
    lines.append("Units: " + ", ".join(f"{name} {count}" for name, count in result["units"].items()))
    srm = result["srm"]
    if srm is not None:
        verdict = "MISMATCH, do not trust the effects" if srm["mismatch"] else "ok"
        lines.append(f"Sample ratio: p = {srm['p_value']:.3g} ({verdict})")
    for metric in result["metrics"]:
        lines.append("")
        lines.append(f"{metric['name']} ({metric['kind']}, {metric['better']} is better)")
        for variant in metric["variants"]:
            lines.append(f"  {variant['name']:<20} units {variant['units']:>8}  mean {_number(variant['mean'])}")
        for comparison in metric["comparisons"]:
            lines.append(f"  {comparison['variant']} vs {result['control']}: {_effect(comparison)}")
    decision = result["decision"]
    lines.append("")
    target = f" {decision['variant']}" if decision["variant"] else ""
    lines.append(f"Decision: {decision['action']}{target} ({decision['reason']})")
    if "warning" in result:
        lines.append(f"Warning: {result['warning']}")
    return "\n".join(lines) + "\n"
