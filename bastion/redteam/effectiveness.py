"""Guard effectiveness: what the guard takes off the attack success rate (docs/REDTEAM.md, "Guard
effectiveness").

A run through the guard and a model-only run are a pair when they attacked the same model and
vault prompt with the same selection and seed (their attempts are then the same). The later of the
two carries, in its summary and its report, the attack success rate (ASR) without the guard minus
the ASR with it, overall and per category the two runs share: 0.4 means the guard turned 40 points
of successful attacks into failures; a negative figure, that attacks fared better through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The keys of a stored spec that change what is attempted (not how fast or how long answers are).
SELECTION_KEYS = ("categories", "techniques", "attack_ids", "perturbations", "max_attempts")


def same_selection(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return all(left.get(key) == right.get(key) for key in SELECTION_KEYS)


def guard_effectiveness(
    without_guard: Mapping[str, Any], with_guard: Mapping[str, Any], *, model_run: str, gateway_run: str
) -> dict[str, Any]:
    """From the two runs' summaries (``success_rate``, ``by_category`` rates)."""
    off, on = without_guard.get("by_category", {}), with_guard.get("by_category", {})
    return {
        "model_run": model_run,
        "gateway_run": gateway_run,
        "overall": round(float(without_guard["success_rate"]) - float(with_guard["success_rate"]), 6),
        "by_category": {
            category: round(float(off[category]["rate"]) - float(on[category]["rate"]), 6)
            for category in sorted(set(off) & set(on))
        },
    }
